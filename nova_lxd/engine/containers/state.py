"""A container's live state, read from liblxc and its cgroups.

Counters are read by trying the cgroup v1 file and then the v2 one, so the
same code serves v1, hybrid and pure v2 hosts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nova_lxd.engine import liblxc


@dataclasses.dataclass(frozen=True)
class ContainerState:
    name: str
    status: str
    """liblxc's state: RUNNING, STOPPED, FROZEN (or a transition)."""
    pid: int | None = None
    cpu_time_ns: int | None = None
    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    processes: int | None = None
    addresses: dict[str, list[str]] = dataclasses.field(
        default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status in (liblxc.RUNNING, liblxc.FROZEN,
                               liblxc.FREEZING)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_state(name: str, ct: Any) -> ContainerState:
    status = liblxc.state(ct)
    if status == liblxc.STOPPED:
        return ContainerState(name=name, status=status)
    return ContainerState(
        name=name,
        status=status,
        pid=liblxc.init_pid(ct),
        cpu_time_ns=_cpu_time_ns(ct),
        memory_bytes=_int(liblxc.cgroup_item(ct, "memory.usage_in_bytes")
                          or liblxc.cgroup_item(ct, "memory.current")),
        memory_peak_bytes=_int(
            liblxc.cgroup_item(ct, "memory.max_usage_in_bytes")
            or liblxc.cgroup_item(ct, "memory.peak")),
        processes=_int(liblxc.cgroup_item(ct, "pids.current")),
        addresses=(liblxc.interfaces(ct)
                   if status == liblxc.RUNNING else {}),
    )


def _cpu_time_ns(ct: Any) -> int | None:
    usage = _int(liblxc.cgroup_item(ct, "cpuacct.usage"))
    if usage is not None:
        return usage
    stat = liblxc.cgroup_item(ct, "cpu.stat") or ""
    for line in stat.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            usec = _int(value)
            return None if usec is None else usec * 1000
    return None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip().split()[0])
    except (ValueError, IndexError):
        return None
