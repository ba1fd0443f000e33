import os
import tempfile
from pathlib import Path

import pytest

from nova_lxd.engine import errors, host

PROC_CGROUPS = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t2\t1
cpu\t1\t2\t1
cpuacct\t1\t2\t1
blkio\t7\t2\t1
memory\t4\t34\t1
devices\t5\t2\t1
freezer\t6\t2\t1
pids\t8\t2\t1
"""

V1_MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/devices cgroup rw,relatime,devices 0 0
cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
"""
HYBRID_MOUNTS = V1_MOUNTS + (
    "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n")
V2_MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
"""


def _write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def fake_tree(root: Path, mounts: str, *, cgroups=PROC_CGROUPS,
              unified_controllers=None, memsw=True, swap_max=True,
              cpus="0-3", memtotal_kb=4096 * 1024, apparmor=None) -> Path:
    _write(root, "/proc/self/mounts", mounts)
    if cgroups is not None:
        _write(root, "/proc/cgroups", cgroups)
    _write(root, "/proc/meminfo", f"MemTotal:       {memtotal_kb} kB\n"
                                  f"MemFree:        1024 kB\n")
    _write(root, "/sys/devices/system/cpu/online", cpus + "\n")
    _write(root, "/proc/self/cgroup", "0::/user.slice/session-1.scope\n")
    _write(root, "/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device", "")
    if memsw:
        _write(root, "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
               "9223372036854771712\n")
    if unified_controllers is not None:
        base = ("/sys/fs/cgroup/unified" if "unified" in mounts
                else "/sys/fs/cgroup")
        _write(root, base + "/cgroup.controllers", unified_controllers)
        if swap_max:
            _write(root, base + "/system.slice/memory.swap.max", "max\n")
    if apparmor is not None:
        _write(root, "/sys/module/apparmor/parameters/enabled", apparmor)
    return root


# -- cgroup layout ---------------------------------------------------------

def test_pure_v1(tmp_path):
    layout = host.cgroup_layout(fake_tree(tmp_path, V1_MOUNTS))
    assert layout.mode == "v1"
    assert {c: layout.version(c) for c in host.CONTROLLERS} == dict.fromkeys(
        host.CONTROLLERS, "v1")
    assert layout.mountpoint("cpuacct") == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.unified_mount is None


def test_hybrid_like_this_machine(tmp_path):
    root = fake_tree(tmp_path, HYBRID_MOUNTS, unified_controllers="hugetlb\n")
    layout = host.cgroup_layout(root)
    assert layout.mode == "hybrid"
    assert layout.memory == layout.cpu == layout.freezer == "v1"
    assert layout.unified_mount == "/sys/fs/cgroup/unified"
    assert host.swap_accounting(layout, root) is True


def test_hybrid_with_a_controller_moved_to_v2(tmp_path):
    mounts = HYBRID_MOUNTS.replace(
        "cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n", "")
    root = fake_tree(tmp_path, mounts, unified_controllers="pids\n")
    layout = host.cgroup_layout(root)
    assert layout.mode == "hybrid"
    assert layout.pids == "v2" and layout.memory == "v1"
    assert layout.mountpoint("pids") == "/sys/fs/cgroup/unified"


def test_pure_v2(tmp_path):
    root = fake_tree(tmp_path, V2_MOUNTS, cgroups=None, memsw=False,
                     unified_controllers="cpuset cpu io memory pids\n")
    layout = host.cgroup_layout(root)
    assert layout.mode == "v2"
    assert {c: layout.version(c) for c in host.CONTROLLERS} == dict.fromkeys(
        host.CONTROLLERS, "v2")
    assert layout.mountpoint("memory") == "/sys/fs/cgroup"
    assert host.swap_accounting(layout, root) is True


def test_v2_without_memory_swap_max_has_no_swap_accounting(tmp_path):
    root = fake_tree(tmp_path, V2_MOUNTS, cgroups=None, memsw=False,
                     swap_max=False, unified_controllers="cpu memory\n")
    layout = host.cgroup_layout(root)
    assert layout.cpuset is None and layout.pids is None
    assert host.swap_accounting(layout, root) is False


def test_v1_without_memsw_has_no_swap_accounting(tmp_path):
    root = fake_tree(tmp_path, V1_MOUNTS, memsw=False)
    assert host.swap_accounting(host.cgroup_layout(root), root) is False


def test_disabled_controller_is_absent(tmp_path):
    cgroups = PROC_CGROUPS.replace("memory\t4\t34\t1", "memory\t4\t34\t0")
    root = fake_tree(tmp_path, V1_MOUNTS, cgroups=cgroups)
    layout = host.cgroup_layout(root)
    assert layout.memory is None
    assert host.swap_accounting(layout, root) is False


def test_escaped_mount_point(tmp_path):
    mounts = V1_MOUNTS.replace("/sys/fs/cgroup/memory ",
                               "/sys/fs/cgroup/my\\040memory ")
    layout = host.cgroup_layout(fake_tree(tmp_path, mounts))
    assert layout.mountpoint("memory") == "/sys/fs/cgroup/my memory"


def test_no_cgroups_at_all_is_a_host_error(tmp_path):
    root = fake_tree(tmp_path, "sysfs /sys sysfs rw 0 0\n")
    with pytest.raises(errors.HostError, match="no cgroup hierarchy"):
        host.cgroup_layout(root)


def test_unknown_controller_is_a_programming_error(tmp_path):
    layout = host.cgroup_layout(fake_tree(tmp_path, V1_MOUNTS))
    with pytest.raises(ValueError):
        layout.version("net_cls")


# -- other facts ---------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("Y\n", True), ("N\n", False), (None, False)])
def test_apparmor_enabled(tmp_path, value, expected):
    root = fake_tree(tmp_path, V1_MOUNTS, apparmor=value)
    assert host.apparmor_enabled(root) is expected


def test_cpus_and_memory(tmp_path):
    root = fake_tree(tmp_path, V1_MOUNTS, cpus="0-1,4,6-7",
                     memtotal_kb=2048)
    assert host.online_cpus(root) == (0, 1, 4, 6, 7)
    assert host.cpu_count(root) == 5
    assert host.memory_bytes(root) == 2048 * 1024


def test_unreadable_cpus_is_a_host_error(tmp_path):
    root = fake_tree(tmp_path, V1_MOUNTS)
    (root / "sys/devices/system/cpu/online").write_text("garbage\n")
    with pytest.raises(errors.HostError, match="online cpus"):
        host.online_cpus(root)


def test_probe_host_on_a_fake_tree(tmp_path):
    root = fake_tree(tmp_path / "root", HYBRID_MOUNTS,
                     unified_controllers="", apparmor="Y\n", cpus="0-7",
                     memtotal_kb=1024 * 1024)
    probed = []
    info = host.probe_host(tmp_path, root=root,
                           idmap_probe=lambda p: probed.append(p) or True)
    assert probed == [tmp_path]
    assert info.cgroups.mode == "hybrid"
    assert info.cpu_count == 8 and info.online_cpus == tuple(range(8))
    assert info.memory_bytes == 1024**3
    assert info.apparmor and info.swap_accounting and info.idmapped_mounts
    assert info.cgroups.blkio == "v1"
    assert info.disk_device is None  # no /sys/dev/block in the fake tree
    assert "not a block device" in info.disk_problem


# -- the disk under the containers directory -----------------------------

def _sys_block(root: Path, whole: str, dev: str, part: str | None = None,
               part_dev: str | None = None) -> None:
    """/sys/devices/.../block/<whole>[/<part>] and /sys/dev/block links,
    as the kernel lays them out."""
    disk = root / "sys/devices/virtual/block" / whole
    disk.mkdir(parents=True)
    (disk / "dev").write_text(dev + "\n")
    links = root / "sys/dev/block"
    links.mkdir(parents=True, exist_ok=True)
    (links / dev).symlink_to(f"../../devices/virtual/block/{whole}")
    if part:
        (disk / part).mkdir()
        (disk / part / "dev").write_text(part_dev + "\n")
        (disk / part / "partition").write_text("1\n")
        (links / part_dev).symlink_to(
            f"../../devices/virtual/block/{whole}/{part}")


def _disk(tmp_path, mounts, **tree):
    root = fake_tree(tmp_path / "root", mounts, **tree)
    layout = host.cgroup_layout(root)
    return root, layout


def test_partition_resolves_to_its_disk(tmp_path):
    root, layout = _disk(tmp_path, V1_MOUNTS)
    _sys_block(root, "sda", "8:0", "sda1", "8:1")
    assert host.disk_device(Path("/srv"), layout, root,
                            st_dev=os.makedev(8, 1)) == ("8:0", None)


@pytest.mark.parametrize("whole, dev", [
    ("vda", "254:0"), ("dm-0", "253:0"), ("loop3", "7:3")])
def test_whole_devices_are_themselves(tmp_path, whole, dev):
    root, layout = _disk(tmp_path, V1_MOUNTS)
    _sys_block(root, whole, dev)
    major, minor = map(int, dev.split(":"))
    assert host.disk_device(Path("/srv"), layout, root,
                            st_dev=os.makedev(major, minor)) == (dev, None)


def test_anonymous_device_says_why(tmp_path):
    mounts = V1_MOUNTS + "/dev/sdb /srv btrfs rw 0 0\n"
    root, layout = _disk(tmp_path, mounts)
    dev, why = host.disk_device(Path("/srv/containers"), layout, root,
                                st_dev=os.makedev(0, 52))
    assert dev is None
    assert "btrfs" in why and "0:52" in why


def test_no_blkio_controller_says_why(tmp_path):
    mounts = V1_MOUNTS.replace(
        "cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0\n", "")
    root, layout = _disk(tmp_path, mounts)
    assert layout.blkio is None
    dev, why = host.disk_device(Path("/srv"), layout, root,
                                st_dev=os.makedev(8, 0))
    assert dev is None and "no blkio" in why


def test_no_throttling_in_the_kernel_says_why(tmp_path):
    root, layout = _disk(tmp_path, V1_MOUNTS)
    (root / "sys/fs/cgroup/blkio/blkio.throttle.read_bps_device").unlink()
    _sys_block(root, "sda", "8:0")
    dev, why = host.disk_device(Path("/srv"), layout, root,
                                st_dev=os.makedev(8, 0))
    assert dev is None and "CONFIG_BLK_DEV_THROTTLING" in why


def test_io_controller_on_v2_serves_blkio(tmp_path):
    root = fake_tree(tmp_path, V2_MOUNTS, cgroups=None, memsw=False,
                     unified_controllers="cpu io memory\n")
    layout = host.cgroup_layout(root)
    assert layout.blkio == "v2"
    assert layout.mountpoint("blkio") == "/sys/fs/cgroup"
    _sys_block(root, "nvme0n1", "259:0")
    dev = os.makedev(259, 0)
    dev_, why = host.disk_device(Path("/srv"), layout, root, st_dev=dev)
    assert dev_ is None and "CONFIG_BLK_DEV_THROTTLING" in why
    _write(root, "/sys/fs/cgroup/system.slice/io.max", "")
    assert host.disk_device(Path("/srv"), layout, root, st_dev=dev) == (
        "259:0", None)


# -- this machine (Debian 12, kernel 6.18, hybrid cgroups, root) -----------

on_this_machine = pytest.mark.skipif(
    not Path("/sys/fs/cgroup/unified").is_dir()
    or not Path("/sys/fs/cgroup/memory").is_dir(),
    reason="needs this machine's hybrid cgroup layout")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@on_this_machine
def test_real_layout_is_hybrid_with_memory_on_v1():
    layout = host.cgroup_layout()
    assert layout.mode == "hybrid"
    assert layout.memory == "v1"
    assert host.memory_bytes() > 0 and host.cpu_count() >= 1


@on_this_machine
def test_real_disk_of_var_tmp():
    dev, why = host.disk_device(Path("/var/tmp"), host.cgroup_layout())
    if dev is None:
        pytest.skip(f"/var/tmp cannot be throttled here: {why}")
    assert Path(f"/sys/dev/block/{dev}").exists()
    assert not Path(f"/sys/dev/block/{dev}/partition").exists()


@pytest.fixture
def fresh_probe():
    host.clear_probe_cache()
    yield
    host.clear_probe_cache()


def _children() -> set[int]:
    me, kids = str(os.getpid()), set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me:
            kids.add(int(entry.name))
    return kids


@as_root
def test_real_idmapped_mount_probe_on_var_tmp(fresh_probe):
    fds_before = set(os.listdir("/proc/self/fd"))
    kids_before = _children()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        assert host.idmapped_mounts_supported(Path(d)) is True
    assert set(os.listdir("/proc/self/fd")) == fds_before
    assert _children() == kids_before


def test_probe_of_a_missing_path_is_false(fresh_probe, tmp_path):
    assert host.idmapped_mounts_supported(tmp_path / "absent") is False


@as_root
def test_probe_failure_is_false_and_cleans_up(fresh_probe):
    # procfs refuses idmapped mounts: mount_setattr fails with EINVAL.
    fds_before = set(os.listdir("/proc/self/fd"))
    kids_before = _children()
    assert host.idmapped_mounts_supported(Path("/proc")) is False
    assert set(os.listdir("/proc/self/fd")) == fds_before
    assert _children() == kids_before


def test_probe_is_false_when_no_user_namespace_appears(fresh_probe,
                                                        tmp_path,
                                                        monkeypatch):
    real_popen = host.subprocess.Popen
    monkeypatch.setattr(host.subprocess, "Popen",
                        lambda args, **kw: real_popen(["true"], **kw))
    kids_before = _children()
    assert host.idmapped_mounts_supported(tmp_path) is False
    assert _children() == kids_before


def test_probe_is_cached_per_device(fresh_probe, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(host, "_probe_idmap",
                        lambda path, nrs: calls.append(path))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert host.idmapped_mounts_supported(tmp_path / "a") is True
    assert host.idmapped_mounts_supported(tmp_path / "b") is True
    assert calls == [tmp_path / "a"]


def test_probe_on_an_unknown_architecture_is_false(fresh_probe, tmp_path,
                                                   monkeypatch):
    monkeypatch.setattr(host.platform, "machine", lambda: "vax")
    assert host.idmapped_mounts_supported(tmp_path) is False
