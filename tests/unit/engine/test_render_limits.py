import pytest

from nova_lxd.engine.errors import InvalidLimits
from nova_lxd.engine.host import CONTROLLERS, CgroupLayout, HostInfo
from nova_lxd.engine.limits import parse_limits
from nova_lxd.engine.render.limits import (
    pick_cpus,
    render_limits,
    shares_to_weight,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
V1 = CgroupLayout(mode="v1", **dict.fromkeys(CONTROLLERS, "v1"))
V2 = CgroupLayout(mode="v2", **dict.fromkeys(CONTROLLERS, "v2"))
# This machine: everything on v1, cgroup2 mounted with no controllers.
HYBRID = CgroupLayout(mode="hybrid", **dict.fromkeys(CONTROLLERS, "v1"),
                      unified_mount="/sys/fs/cgroup/unified")
# A hybrid host where pids and cpu moved to the unified hierarchy.
MIXED = CgroupLayout(mode="hybrid",
                     **{**dict.fromkeys(CONTROLLERS, "v1"),
                        "pids": "v2", "cpu": "v2"})


def host(layout, cpus=(0, 1, 2, 3), memory=8 * GiB, swap=True):
    return HostInfo(cgroups=layout, online_cpus=cpus, memory_bytes=memory,
                    swap_accounting=swap, apparmor=False,
                    idmapped_mounts=True)


def render(config, layout, **host_args):
    return render_limits(parse_limits(config), layout,
                         host(layout, **host_args))


FULL = {"limits.cpu": "0-1,3", "limits.cpu.allowance": "50ms/100ms",
        "limits.cpu.priority": "5", "limits.memory": "512MiB",
        "limits.memory.swap": "false", "limits.processes": "200"}


def test_no_limits_render_nothing():
    for layout in (V1, V2, HYBRID):
        assert render({}, layout) == []


def test_v1_full():
    assert render(FULL, V1) == [
        ("lxc.cgroup.cpuset.cpus", "0-1,3"),
        ("lxc.cgroup.cpu.shares", "559"),
        ("lxc.cgroup.cpu.cfs_period_us", "100000"),
        ("lxc.cgroup.cpu.cfs_quota_us", "50000"),
        ("lxc.cgroup.memory.limit_in_bytes", str(512 * MiB)),
        ("lxc.cgroup.memory.memsw.limit_in_bytes", str(512 * MiB)),
        ("lxc.cgroup.pids.max", "200"),
    ]


def test_v2_full():
    assert render(FULL, V2) == [
        ("lxc.cgroup2.cpuset.cpus", "0-1,3"),
        ("lxc.cgroup2.cpu.weight", str(shares_to_weight(559))),
        ("lxc.cgroup2.cpu.max", "50000 100000"),
        ("lxc.cgroup2.memory.max", str(512 * MiB)),
        ("lxc.cgroup2.memory.swap.max", "0"),
        ("lxc.cgroup2.pids.max", "200"),
    ]


def test_hybrid_uses_v1_keys_for_v1_controllers():
    assert render(FULL, HYBRID) == render(FULL, V1)


def test_hybrid_picks_the_version_per_controller():
    pairs = dict(render(FULL, MIXED))
    assert pairs["lxc.cgroup.cpuset.cpus"] == "0-1,3"
    assert pairs["lxc.cgroup2.cpu.max"] == "50000 100000"
    assert "lxc.cgroup2.cpu.weight" in pairs
    assert pairs["lxc.cgroup.memory.limit_in_bytes"] == str(512 * MiB)
    assert pairs["lxc.cgroup2.pids.max"] == "200"
    assert not any(k.startswith("lxc.cgroup.cpu.") for k in pairs)


@pytest.mark.parametrize("swap, v1_memsw, v2_swap", [
    ("false", str(GiB), "0"),
    ("true", None, "max"),
    ("256MiB", str(GiB + 256 * MiB), str(256 * MiB)),
])
def test_swap_rendering(swap, v1_memsw, v2_swap):
    config = {"limits.memory": "1GiB", "limits.memory.swap": swap}
    v1 = render(config, V1)
    assert v1[0] == ("lxc.cgroup.memory.limit_in_bytes", str(GiB))
    assert dict(v1).get("lxc.cgroup.memory.memsw.limit_in_bytes") == (
        v1_memsw)
    assert render(config, V2) == [("lxc.cgroup2.memory.max", str(GiB)),
                                  ("lxc.cgroup2.memory.swap.max", v2_swap)]


def test_memory_percent_resolves_against_host_memory():
    assert render({"limits.memory": "25%"}, V1, memory=8 * GiB) == [
        ("lxc.cgroup.memory.limit_in_bytes", str(2 * GiB))]


def test_cpu_count_pins_the_lowest_online_cpus():
    assert render({"limits.cpu": "2"}, V1, cpus=(1, 3, 4, 6)) == [
        ("lxc.cgroup.cpuset.cpus", "1,3")]
    assert render({"limits.cpu": 3}, V2, cpus=(0, 1, 2, 3)) == [
        ("lxc.cgroup2.cpuset.cpus", "0-2")]
    with pytest.raises(InvalidLimits):
        pick_cpus(5, (0, 1))


def test_shares_only_and_quota_only():
    assert render({"limits.cpu.allowance": "50%"}, V1) == [
        ("lxc.cgroup.cpu.shares", "512")]
    assert render({"limits.cpu.allowance": "20ms/50ms"}, V2) == [
        ("lxc.cgroup2.cpu.max", "20000 50000")]


@pytest.mark.parametrize("shares, weight", [
    (2, 1), (262144, 10000), (1024, 39), (512, 20), (1, 1), (10**6, 10000)])
def test_shares_to_weight(shares, weight):
    assert shares_to_weight(shares) == weight


def test_infeasible_limits_are_refused_before_rendering():
    with pytest.raises(InvalidLimits, match="only 4 online cpus"):
        render({"limits.cpu": "8"}, V1)
    with pytest.raises(InvalidLimits, match="no swap accounting"):
        render({"limits.memory": "1GiB", "limits.memory.swap": "false"},
               V1, swap=False)
    no_pids = CgroupLayout(mode="v1", cpu="v1", memory="v1")
    with pytest.raises(InvalidLimits, match="no pids cgroup controller"):
        render({"limits.processes": "10"}, no_pids)


DISK = {"limits.disk.read": "10MB,100iops", "limits.disk.write": "20MiB"}


def disk_host(layout, device="254:0"):
    return HostInfo(cgroups=layout, online_cpus=(0, 1), memory_bytes=GiB,
                    swap_accounting=True, apparmor=False,
                    idmapped_mounts=True, disk_device=device)


def test_v1_disk_throttles():
    assert render_limits(parse_limits(DISK), V1, disk_host(V1)) == [
        ("lxc.cgroup.blkio.throttle.read_bps_device", "254:0 10000000"),
        ("lxc.cgroup.blkio.throttle.write_bps_device",
         f"254:0 {20 * MiB}"),
        ("lxc.cgroup.blkio.throttle.read_iops_device", "254:0 100"),
    ]
    assert render_limits(parse_limits({"limits.disk.write": "7iops"}),
                         HYBRID, disk_host(HYBRID, "8:0")) == [
        ("lxc.cgroup.blkio.throttle.write_iops_device", "8:0 7")]


def test_v2_disk_is_one_io_max_line():
    assert render_limits(parse_limits(DISK), V2, disk_host(V2)) == [
        ("lxc.cgroup2.io.max",
         f"254:0 rbps=10000000 wbps={20 * MiB} riops=100")]
    mixed = CgroupLayout(mode="hybrid", **{
        **dict.fromkeys(CONTROLLERS, "v1"), "blkio": "v2"})
    assert render_limits(parse_limits({"limits.disk.read": "5iops"}),
                         mixed, disk_host(mixed, "253:1")) == [
        ("lxc.cgroup2.io.max", "253:1 riops=5")]


def test_disk_limits_without_a_disk_are_refused():
    with pytest.raises(InvalidLimits, match="unknown"):
        render_limits(parse_limits(DISK), V1, disk_host(V1, None))
    no_blkio = CgroupLayout(mode="v1", cpu="v1", memory="v1")
    with pytest.raises(InvalidLimits, match="no blkio"):
        render_limits(parse_limits(DISK), no_blkio, disk_host(no_blkio))
