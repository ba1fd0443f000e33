"""Changing a container's limits while it runs.

The new configuration is rendered as for a start; the difference with the
old one is written into the running container's cgroups through liblxc.
A limit that disappears is reset to the kernel's "no limit". Some changes
only work in one order (memory below memory+swap, for instance), so the
refused ones are tried once more after the others; if the kernel still
refuses, the old values go back and the caller gets a typed error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from nova_lxd.engine import errors
from nova_lxd.engine.limits import format_cpuset

Items = list[tuple[str, str]]
_PREFIXES = ("lxc.cgroup2.", "lxc.cgroup.")
# The kernel's "unlimited" for each file the limit renderer writes.
_RESET = {
    "memory.limit_in_bytes": "-1",
    "memory.memsw.limit_in_bytes": "-1",
    "cpu.cfs_quota_us": "-1",
    "cpu.shares": "1024",
    "pids.max": "max",
    "memory.max": "max",
    "memory.swap.max": "max",
    "cpu.max": "max",
    "cpu.weight": "100",
}


def cgroup_items(pairs: Iterable[tuple[str, str]]) -> Items:
    """``lxc.cgroup[2].<file> = value`` keys as (file, value)."""
    out = []
    for key, value in pairs:
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                out.append((key[len(prefix):], value))
                break
    return out


def _reset_value(item: str, old_value: str,
                 online_cpus: Sequence[int]) -> str | None:
    if item in _RESET:
        return _RESET[item]
    if item == "cpuset.cpus":
        return format_cpuset(tuple(online_cpus))
    if item == "cpu.cfs_period_us":
        return None  # meaningless without a quota
    if item.startswith("blkio.throttle."):
        return f"{old_value.split()[0]} 0"
    if item == "io.max":
        dev = old_value.split()[0]
        return f"{dev} rbps=max wbps=max riops=max wiops=max"
    return None


def changes(old: Items, new: Items, online_cpus: Sequence[int]) -> Items:
    """What to write so that a container with ``old`` has ``new``."""
    new_files = {item for item, _ in new}
    out = [(item, value) for item, value in new if (item, value) not in old]
    for item, value in old:
        if item not in new_files:
            reset = _reset_value(item, value, online_cpus)
            if reset is not None:
                out.append((item, reset))
    return out


def apply(ct: Any, name: str, wanted: Items, previous: Items) -> None:
    """Write ``wanted`` into the running container's cgroups; on refusal
    put ``previous`` values back and raise OperationFailed."""
    pending = list(wanted)
    for _ in range(2):
        pending = [(item, value) for item, value in pending
                   if not ct.set_cgroup_item(item, value)]
        if not pending:
            return
    for item, value in previous:
        ct.set_cgroup_item(item, value)
    refused = ", ".join(f"{item}={value}" for item, value in pending)
    raise errors.OperationFailed(
        action="change the limits of", name=name,
        reason=f"the kernel refused {refused} (memory below what the "
               f"container uses cannot be set while it runs: stop it "
               f"first)")

