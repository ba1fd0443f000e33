"""Limits reach the container's cgroups on this host."""

from __future__ import annotations

from .helpers import cgroup_file


def test_limits_in_cgroup_files(engine, image):
    engine.create("limited", "busybox", limits={
        "limits.memory": "256MiB",
        "limits.memory.swap": "false",
        "limits.processes": 100,
        "limits.cpu": "1",
        "limits.cpu.allowance": "50ms/100ms",
    })
    engine.start("limited")
    pid = engine.state("limited").pid
    memory = cgroup_file(pid, "memory", "memory.limit_in_bytes"
                         ) if _v1("memory", pid) else cgroup_file(
        pid, "memory", "memory.max")
    assert int(memory) == 256 * 1024 * 1024
    assert cgroup_file(pid, "pids", "pids.max") == "100"
    assert cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"
    if _v1("cpu", pid):
        assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert cgroup_file(pid, "cpu", "cpu.cfs_period_us") == "100000"
    else:
        assert cgroup_file(pid, "cpu", "cpu.max") == "50000 100000"


def test_processes_limit_is_enforced(engine, image):
    engine.launch("forkless", "busybox", limits={"limits.processes": 5})
    result = engine.execute("forkless", [
        "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait"])
    assert b"fork" in result.stderr.lower(), result.stderr


def _v1(controller: str, pid: int) -> bool:
    with open(f"/proc/{pid}/cgroup") as f:
        return any(controller in line.split(":")[1].split(",")
                   for line in f if not line.startswith("0::"))
