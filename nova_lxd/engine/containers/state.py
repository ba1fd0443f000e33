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
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    network: dict[str, dict[str, int]] = dataclasses.field(
        default_factory=dict)
    """Per interface: rx_bytes, rx_packets, rx_errors, rx_drop and the
    same for tx, from the container's own network namespace."""

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
        **_disk_bytes(ct),
        network=_network(liblxc.init_pid(ct)),
    )


def _disk_bytes(ct: Any) -> dict[str, int | None]:
    """Bytes read and written by the container's processes (blkio on v1,
    io.stat on v2)."""
    v1 = liblxc.cgroup_item(ct, "blkio.throttle.io_service_bytes")
    if v1 is not None:
        totals = {"Read": 0, "Write": 0}
        for line in v1.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in totals:
                totals[parts[1]] += int(parts[2])
        return {"disk_read_bytes": totals["Read"],
                "disk_write_bytes": totals["Write"]}
    v2 = liblxc.cgroup_item(ct, "io.stat")
    if v2 is not None:
        read = write = 0
        for line in v2.splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    write += int(value)
        return {"disk_read_bytes": read, "disk_write_bytes": write}
    return {"disk_read_bytes": None, "disk_write_bytes": None}


_NET_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_drop")
_TX_FIELDS = ("tx_bytes", "tx_packets", "tx_errors", "tx_drop")


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """/proc/PID/net/dev: counters of the namespace the process is in."""
    result = {}
    for line in text.splitlines()[2:]:
        name, _, data = line.partition(":")
        values = data.split()
        if len(values) < 16:
            continue
        numbers = [int(v) for v in values]
        counters = dict(zip(_NET_FIELDS, numbers[0:4], strict=True))
        counters.update(zip(_TX_FIELDS, numbers[8:12], strict=True))
        result[name.strip()] = counters
    return result


def _network(pid: int | None) -> dict[str, dict[str, int]]:
    if pid is None:
        return {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            return parse_net_dev(f.read())
    except OSError:
        return {}


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
