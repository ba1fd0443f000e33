"""Nesting and shared id maps: the two switches that weaken isolation,
on real containers."""

from __future__ import annotations

from .helpers import proc_status


def mounts(engine, name: str) -> str:
    return engine.execute(name, ["cat", "/proc/self/mounts"]
                          ).stdout.decode()


def host_uid_of_root(engine, name: str) -> int:
    pid = engine.state(name).pid
    return int(proc_status(pid)["Uid"].split()[0])


def test_nesting_mounts_proc_and_sys_for_nested_containers(engine, image):
    engine.launch("nested", "busybox", nesting=True)
    engine.launch("flat", "busybox")
    inside = mounts(engine, "nested")
    assert "/dev/.lxc/proc proc" in inside
    assert "/dev/.lxc/sys sysfs" in inside
    assert "/dev/.lxc" not in mounts(engine, "flat")
    assert engine.get("nested").nesting
    # Still unprivileged: root inside is a subordinate id on the host.
    assert host_uid_of_root(engine, "nested") >= 100000


def test_shared_idmap_is_one_range_apart_from_isolated_ones(engine, image):
    for name in ("shared1", "shared2"):
        engine.launch(name, "busybox", isolated_idmap=False)
    engine.launch("alone", "busybox")
    maps = {n: engine.get(n).idmap for n in ("shared1", "shared2", "alone")}
    assert maps["shared1"] == maps["shared2"]
    assert engine.get("shared1").shared_idmap
    assert not engine.get("alone").shared_idmap
    assert maps["alone"].uid_base != maps["shared1"].uid_base
    assert host_uid_of_root(engine, "shared1") == \
        host_uid_of_root(engine, "shared2") == maps["shared1"].uid_base
    # The shared range stays taken while one shared container is left.
    engine.delete("shared1", force=True)
    engine.launch("isolated2", "busybox")
    assert engine.get("isolated2").idmap.uid_base not in (
        maps["shared1"].uid_base, maps["alone"].uid_base)
    engine.delete("shared2", force=True)
    engine.launch("shared3", "busybox", isolated_idmap=False)
    assert engine.get("shared3").idmap.uid_base not in (
        maps["alone"].uid_base, engine.get("isolated2").idmap.uid_base)
