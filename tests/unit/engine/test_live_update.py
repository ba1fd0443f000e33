from nova_lxd.engine.containers import update


def test_cgroup_items_strip_prefixes():
    assert update.cgroup_items([("lxc.cgroup.memory.limit_in_bytes", "1"),
                                ("lxc.cgroup2.cpu.max", "2 3"),
                                ("lxc.uts.name", "x")]) == [
        ("memory.limit_in_bytes", "1"), ("cpu.max", "2 3")]


def test_changes_set_new_and_reset_gone():
    old = [("memory.limit_in_bytes", "100"), ("pids.max", "5"),
           ("cpuset.cpus", "0"), ("cpu.cfs_period_us", "100000"),
           ("cpu.cfs_quota_us", "50000"),
           ("blkio.throttle.read_bps_device", "254:0 1000")]
    new = [("memory.limit_in_bytes", "200"), ("pids.max", "5")]
    assert update.changes(old, new, (0, 1)) == [
        ("memory.limit_in_bytes", "200"),
        ("cpuset.cpus", "0-1"),
        ("cpu.cfs_quota_us", "-1"),
        ("blkio.throttle.read_bps_device", "254:0 0")]


class FakeContainer:
    def __init__(self, refuse_first=(), refuse_always=()):
        self.refuse_first = set(refuse_first)
        self.refuse_always = set(refuse_always)
        self.written = []

    def set_cgroup_item(self, item, value):
        if item in self.refuse_always:
            return False
        if item in self.refuse_first:
            self.refuse_first.discard(item)
            return False
        self.written.append((item, value))
        return True


def test_apply_retries_order_dependent_changes():
    ct = FakeContainer(refuse_first={"memory.limit_in_bytes"})
    update.apply(ct, "c", [("memory.limit_in_bytes", "1"),
                           ("memory.memsw.limit_in_bytes", "1")], [])
    assert ct.written == [("memory.memsw.limit_in_bytes", "1"),
                          ("memory.limit_in_bytes", "1")]


def test_apply_puts_old_values_back_when_refused():
    import pytest

    from nova_lxd.engine import errors
    ct = FakeContainer(refuse_always={"memory.limit_in_bytes"})
    with pytest.raises(errors.OperationFailed, match="memory.limit"):
        update.apply(ct, "c", [("pids.max", "9"),
                               ("memory.limit_in_bytes", "1")],
                     [("pids.max", "5")])
    assert ct.written == [("pids.max", "9"), ("pids.max", "5")]
