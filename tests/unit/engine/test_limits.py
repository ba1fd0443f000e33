import pytest

from nova_lxd.engine.errors import InvalidLimits
from nova_lxd.engine.host import CgroupLayout, HostInfo
from nova_lxd.engine.limits import (
    VALID_KEYS,
    Limits,
    check_feasible,
    format_cpuset,
    parse_cpuset,
    parse_limits,
    parse_size,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
HYBRID = CgroupLayout(mode="hybrid", cpu="v1", cpuset="v1", memory="v1",
                      pids="v1", freezer="v1", cpuacct="v1", devices="v1")


def host(cpus=(0, 1), memory=8 * GiB, swap=True, layout=HYBRID):
    return HostInfo(cgroups=layout, online_cpus=tuple(cpus),
                    memory_bytes=memory, swap_accounting=swap,
                    apparmor=False, idmapped_mounts=True)


def bad(config, key, *words):
    with pytest.raises(InvalidLimits) as exc:
        parse_limits(config)
    assert exc.value.kwargs["key"] == key
    for word in words:
        assert word in str(exc.value)
    return exc.value


def test_no_limits_and_foreign_keys_give_defaults():
    assert parse_limits({}) == Limits()
    assert parse_limits({"security.privileged": "true",
                         "limits.memory": ""}) == Limits()


# -- limits.cpu -----------------------------------------------------------

@pytest.mark.parametrize("value, count", [("2", 2), (2, 2), (" 1 ", 1)])
def test_cpu_count(value, count):
    limits = parse_limits({"limits.cpu": value})
    assert limits.cpu_count == count and limits.cpuset is None


@pytest.mark.parametrize("value, cpus", [
    ("0-1,3", (0, 1, 3)), ("3-3", (3,)), ("2,0,1", (0, 1, 2)),
    ("0-2,1-3", (0, 1, 2, 3))])
def test_cpuset(value, cpus):
    limits = parse_limits({"limits.cpu": value})
    assert limits.cpuset == cpus and limits.cpu_count is None


@pytest.mark.parametrize("value", [
    "0", 0, -1, "two", "1-", "-1", "3-1", "0,,1", "1.5", "0-99999", True,
    "1_0", "\uff12"])
def test_cpu_invalid(value):
    bad({"limits.cpu": value}, "limits.cpu")


def test_cpuset_round_trip():
    assert format_cpuset(parse_cpuset("0-3,5,7-8")) == "0-3,5,7-8"
    assert format_cpuset([4, 1, 2, 3]) == "1-4"


# -- limits.cpu.allowance / priority: the shares mapping ------------------

@pytest.mark.parametrize("config, shares", [
    ({"limits.cpu.allowance": "50%"}, 512),
    ({"limits.cpu.allowance": "100%"}, 1024),
    ({"limits.cpu.allowance": "200%"}, 2048),
    ({"limits.cpu.priority": "10"}, 1024),
    ({"limits.cpu.priority": 0}, 93),             # 1024 * 1/11
    ({"limits.cpu.priority": "5"}, 559),          # 1024 * 6/11
    ({"limits.cpu.allowance": "50%", "limits.cpu.priority": "0"}, 47),
    ({"limits.cpu.allowance": "0.1%", "limits.cpu.priority": "0"}, 2),
    ({"limits.cpu.allowance": "25ms/100ms", "limits.cpu.priority": 10},
     1024),
])
def test_shares_mapping(config, shares):
    assert parse_limits(config).cpu_shares == shares


def test_time_allowance_is_a_hard_quota_without_shares():
    limits = parse_limits({"limits.cpu.allowance": "25ms/100ms"})
    assert (limits.cpu_quota_us, limits.cpu_period_us) == (25000, 100000)
    assert limits.cpu_shares is None
    limits = parse_limits({"limits.cpu.allowance": "1500us/10ms"})
    assert (limits.cpu_quota_us, limits.cpu_period_us) == (1500, 10000)


@pytest.mark.parametrize("value, word", [
    ("0%", "above 0"), ("-5%", "above 0"), ("30000%", "at most"),
    ("half%", "percentage"), ("50", "share"), ("25ms", "share"),
    ("25/100", "quota"), ("25ms/100", "quota"), ("1s/2s", "quota"),
    ("500us/100ms", "at least 1ms"), ("10ms/2000ms", "between 1ms and 1s"),
    ("1ms/500us", "between 1ms and 1s")])
def test_allowance_invalid(value, word):
    bad({"limits.cpu.allowance": value}, "limits.cpu.allowance", word)


@pytest.mark.parametrize("value", ["11", "-1", "high", "5.5", True])
def test_priority_invalid(value):
    bad({"limits.cpu.priority": value}, "limits.cpu.priority")


# -- limits.memory --------------------------------------------------------

@pytest.mark.parametrize("value, size", [
    ("512MiB", 512 * MiB), ("1GB", 10**9), ("256M", 256 * MiB),
    ("1GiB", GiB), ("1.5GiB", 3 * GiB // 2), ("8192kB", 8192000),
    ("8192K", 8 * MiB), (16 * MiB, 16 * MiB), (str(5 * MiB), 5 * MiB),
    ("64 MiB", 64 * MiB), ("1T", 1024 * GiB)])
def test_memory_sizes(value, size):
    assert parse_limits({"limits.memory": value}).memory_bytes == size


def test_memory_percent_resolves_against_host_memory():
    limits = parse_limits({"limits.memory": "50%"})
    assert limits.memory_percent == 50.0 and limits.memory_bytes is None
    assert limits.memory_limit(8 * GiB) == 4 * GiB


@pytest.mark.parametrize("value, word", [
    ("lots", "not a size"), ("12QB", "not a size"), ("1MiBs", "size"),
    ("-1GiB", "size"), ("1MiB", "at least 4MiB"), (4096, "at least 4MiB"),
    ("0%", "above 0"), ("150%", "at most 100"), (True, "string"),
    (1.5, "string")])
def test_memory_invalid(value, word):
    bad({"limits.memory": value}, "limits.memory", word)


# -- limits.memory.swap ---------------------------------------------------

@pytest.mark.parametrize("value, swap, swap_bytes", [
    ("true", True, None), ("TRUE", True, None), (True, True, None),
    ("false", False, None), (False, False, None), ("no", False, None),
    ("1GiB", True, GiB), ("0", False, None)])
def test_swap(value, swap, swap_bytes):
    limits = parse_limits({"limits.memory": "1GiB",
                           "limits.memory.swap": value})
    assert (limits.swap, limits.swap_bytes) == (swap, swap_bytes)


def test_swap_defaults_to_allowed():
    assert parse_limits({"limits.memory": "1GiB"}).swap is True


def test_bounding_swap_needs_a_memory_limit():
    bad({"limits.memory.swap": "false"}, "limits.memory.swap",
        "needs limits.memory")
    bad({"limits.memory.swap": "1GiB"}, "limits.memory.swap")
    assert parse_limits({"limits.memory.swap": "true"}).swap is True


def test_swap_invalid():
    bad({"limits.memory": "1GiB", "limits.memory.swap": "maybe"},
        "limits.memory.swap", "true, false or a size")


# -- limits.processes ------------------------------------------------------

def test_processes():
    assert parse_limits({"limits.processes": "500"}).processes == 500
    assert parse_limits({"limits.processes": 1}).processes == 1


@pytest.mark.parametrize("value", [
    "0", -3, "many", "1e3", 2**23, False, "1_000", 3.0])
def test_processes_invalid(value):
    bad({"limits.processes": value}, "limits.processes")


# -- unknown keys -----------------------------------------------------------

def test_unknown_limit_key_names_the_valid_ones():
    err = bad({"limits.memroy": "1GiB"}, "limits.memroy", "unknown limit")
    for key in VALID_KEYS:
        assert key in str(err)


def test_parse_size_helper():
    assert parse_size("2KiB") == 2048
    # Exact for big values (no float rounding).
    assert parse_size("9223372036854771") == 9223372036854771
    assert parse_size("0.5KiB") == 512
    for value in (-1, "8EiB", 2**62):
        with pytest.raises(ValueError):
            parse_size(value)


# -- check_feasible ----------------------------------------------------------

def feasible(config, **host_args):
    check_feasible(parse_limits(config), host(**host_args))


def infeasible(config, key, word, **host_args):
    with pytest.raises(InvalidLimits) as exc:
        feasible(config, **host_args)
    assert exc.value.kwargs["key"] == key
    assert word in str(exc.value)


def test_feasible_limits_pass():
    feasible({"limits.cpu": "2", "limits.cpu.allowance": "150ms/100ms",
              "limits.memory": "50%", "limits.memory.swap": "false",
              "limits.processes": "100"})
    feasible({"limits.cpu": "0-1"})


def test_more_cpus_than_the_host_has():
    infeasible({"limits.cpu": "3"}, "limits.cpu", "only 2 online cpus")


def test_cpuset_naming_absent_cpus():
    infeasible({"limits.cpu": "1-3"}, "limits.cpu", "cpus 2-3 are not")
    infeasible({"limits.cpu": "0-1"}, "limits.cpu", "cpus 1 are not",
               cpus=(0, 2))


def test_quota_beyond_the_usable_cpus():
    infeasible({"limits.cpu.allowance": "300ms/100ms"},
               "limits.cpu.allowance", "3 cpus of time")
    infeasible({"limits.cpu.allowance": "150ms/100ms",
                "limits.cpu": "1"}, "limits.cpu.allowance", "only 1 cpus")
    infeasible({"limits.cpu.allowance": "150ms/100ms",
                "limits.cpu": "1-1"}, "limits.cpu.allowance", "only 1")


def test_quota_below_1ms_built_directly():
    with pytest.raises(InvalidLimits, match="at least 1ms"):
        check_feasible(Limits(cpu_quota_us=500, cpu_period_us=100000),
                       host())


def test_memory_bounds():
    infeasible({"limits.memory": "9GiB"}, "limits.memory",
               "above this host's memory")
    infeasible({"limits.memory": "1%"}, "limits.memory", "4MiB",
               memory=100 * MiB)
    feasible({"limits.memory": "100%"})


def test_swap_limit_without_swap_accounting():
    infeasible({"limits.memory": "1GiB", "limits.memory.swap": "false"},
               "limits.memory.swap", "no swap accounting", swap=False)
    infeasible({"limits.memory": "1GiB", "limits.memory.swap": "1GiB"},
               "limits.memory.swap", "swapaccount=1", swap=False)
    feasible({"limits.memory": "1GiB", "limits.memory.swap": "true"},
             swap=False)


def test_missing_controller():
    no_pids = CgroupLayout(mode="v1", cpu="v1", cpuset="v1", memory="v1")
    infeasible({"limits.processes": "10"}, "limits.processes",
               "no pids cgroup controller", layout=no_pids)
    feasible({"limits.memory": "1GiB"}, layout=no_pids)


# -- limits.disk.read / limits.disk.write --------------------------------

@pytest.mark.parametrize("value, bps, iops", [
    ("10MB", 10 * 10**6, None), ("20MiB", 20 * MiB, None),
    ("100iops", None, 100), ("10MB,100iops", 10**6 * 10, 100),
    (" 50 IOPS , 1GB ", 10**9, 50), (4096, 4096, None), ("512", 512, None)])
def test_disk_rates(value, bps, iops):
    limits = parse_limits({"limits.disk.read": value,
                           "limits.disk.write": value})
    assert (limits.disk_read_bps, limits.disk_read_iops) == (bps, iops)
    assert (limits.disk_write_bps, limits.disk_write_iops) == (bps, iops)
    assert limits.has_disk


def test_no_disk_limit_by_default():
    assert not parse_limits({"limits.memory": "1GiB"}).has_disk
    assert not parse_limits({"limits.disk.read": ""}).has_disk


@pytest.mark.parametrize("value, words", [
    ("fast", ("10MB", "100iops")), ("0", ("above 0",)),
    ("0iops", ("between 1",)), (f"{2**32}iops", ("between 1",)),
    ("10MB,20MB", ("at most one",)), ("1iops,2iops", ("at most one",)),
    ("10MB,", ("10MB",)), ("-5iops", ("10MB",)), (True, ("string",))])
def test_bad_disk_rates(value, words):
    bad({"limits.disk.write": value}, "limits.disk.write", *words)


def _disk_host(layout=HYBRID, device="254:0", problem=None):
    return HostInfo(cgroups=layout, online_cpus=(0, 1),
                    memory_bytes=8 * GiB, swap_accounting=True,
                    apparmor=False, idmapped_mounts=True,
                    disk_device=device, disk_problem=problem)


def test_disk_limits_need_a_disk_and_a_controller():
    limits = parse_limits({"limits.disk.read": "10MB"})
    blkio = CgroupLayout(mode="v1", blkio="v1")
    check_feasible(limits, _disk_host(blkio))
    with pytest.raises(InvalidLimits, match="no blkio"):
        check_feasible(limits, _disk_host(HYBRID))
    with pytest.raises(InvalidLimits, match="tmpfs, no block device"):
        check_feasible(limits, _disk_host(
            blkio, device=None, problem="tmpfs, no block device"))
    with pytest.raises(InvalidLimits,
                       match="limits.disk.write='1000,9iops'"):
        check_feasible(parse_limits({"limits.disk.write": "1kB,9iops"}),
                       _disk_host(blkio, device=None))
    check_feasible(parse_limits({}), _disk_host(HYBRID, device=None))
