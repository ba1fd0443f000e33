"""LXD-style resource limit keys, parsed into one checked value object.

Key semantics (values are strings, or ints where a number makes sense):

``limits.cpu``
    ``"2"`` (or ``2``): that many cpus, pinned by the renderer; ``"0-1,3"``:
    exactly those cpus (a cpuset; pin one cpu with ``"3-3"``).
``limits.cpu.allowance``
    ``"50%"``: a soft share of cpu time, relative to the default 100%
    (only matters when cpus are contended); ``"25ms/100ms"``: a hard
    quota of 25 ms of cpu time per 100 ms period (``us`` also accepted).
``limits.cpu.priority``
    0-10, default 10: scales the soft share. Mapping (cgroup v1 shares,
    kernel default 1024)::

        shares = round(1024 * pct / 100 * (priority + 1) / 11), at least 2

    where pct is the ``%`` allowance (100 when absent or time based), so
    priority 10 keeps 1024 and priority 0 gets 1/11 of it (93).
``limits.memory``
    ``"512MiB"``, ``"1GB"`` (10^9), ``"256M"`` (binary, like liblxc),
    an int of bytes, or ``"50%"`` of host memory.
``limits.memory.swap``
    ``"true"`` (default): swap allowed, unbounded; ``"false"``: no swap;
    a size: that much swap on top of ``limits.memory``. Bounding swap
    needs ``limits.memory``.
``limits.processes``
    an int >= 1: the most tasks (processes and threads) the container
    may have.
``limits.disk.read`` / ``limits.disk.write``
    a rate in bytes per second (``"10MB"``, ``"20MiB"``, as
    ``limits.memory``), ``"<n>iops"`` operations per second, or both,
    comma separated (``"10MB,100iops"``). Throttled by the blkio (v1)
    or io (v2) controller on the whole disk holding the containers
    directory; refused where that is not a block device.
"""

from __future__ import annotations

import dataclasses
import decimal
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from nova_lxd.engine.errors import InvalidLimits

if TYPE_CHECKING:
    from nova_lxd.engine.host import HostInfo

PREFIX = "limits."
VALID_KEYS = ("limits.cpu", "limits.cpu.allowance", "limits.cpu.priority",
              "limits.disk.read", "limits.disk.write",
              "limits.memory", "limits.memory.swap", "limits.processes")

DEFAULT_SHARES = 1024
MIN_SHARES, MAX_SHARES = 2, 262144
MIN_MEMORY = 4 * 1024 * 1024
MIN_PERIOD_US, MAX_PERIOD_US = 1000, 1_000_000
MIN_QUOTA_US = 1000
MAX_PROCESSES = 4 * 1024 * 1024  # PID_MAX_LIMIT on 64-bit kernels
MAX_CPU = 8191
MAX_SIZE = 2**62  # far beyond any host, and memory + swap stays in int64
MAX_IOPS = 2**32 - 2  # blk-throttle keeps iops in 32 bits, max = unset

_UNITS = {"": 1, "B": 1,
          "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9,
          "TB": 10**12, "PB": 10**15, "EB": 10**18}
for _i, _p in enumerate("KMGTPE", 1):
    _UNITS[f"{_p}iB"] = _UNITS[_p] = 1024 ** _i
_UNITS["k"] = 1024
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", re.ASCII)
_IOPS_RE = re.compile(r"(\d+)\s*iops", re.ASCII | re.IGNORECASE)
_TIME_RE = re.compile(r"(\d+)\s*(ms|us)", re.ASCII)
_INT_RE = re.compile(r"-?\d+", re.ASCII)
_CPU_RE = re.compile(r"\d+", re.ASCII)
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class Limits:
    """Checked limits; ``None`` means "no limit set"."""

    cpu_count: int | None = None
    cpuset: tuple[int, ...] | None = None
    cpu_shares: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    memory_bytes: int | None = None
    memory_percent: float | None = None
    swap: bool = True
    swap_bytes: int | None = None
    processes: int | None = None
    disk_read_bps: int | None = None
    disk_read_iops: int | None = None
    disk_write_bps: int | None = None
    disk_write_iops: int | None = None

    def memory_limit(self, host_memory: int) -> int | None:
        """The memory limit in bytes, resolving a percentage."""
        if self.memory_percent is not None:
            return int(host_memory * self.memory_percent / 100)
        return self.memory_bytes

    @property
    def has_memory(self) -> bool:
        return self.memory_bytes is not None or (
            self.memory_percent is not None)

    @property
    def has_disk(self) -> bool:
        return any(v is not None for v in (
            self.disk_read_bps, self.disk_read_iops,
            self.disk_write_bps, self.disk_write_iops))


def format_cpuset(cpus: tuple[int, ...] | list[int]) -> str:
    """``(0, 1, 3)`` -> ``"0-1,3"`` (the cgroup cpuset syntax)."""
    parts, cpus = [], sorted(set(cpus))
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)


def parse_cpuset(text: str) -> tuple[int, ...]:
    """``"0-1,3"`` -> ``(0, 1, 3)``; ValueError when malformed."""
    cpus: set[int] = set()
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not _CPU_RE.fullmatch(lo) or (sep and not _CPU_RE.fullmatch(hi)):
            raise ValueError(f"{part!r} is not a cpu or range")
        first = int(lo)
        last = int(hi) if sep else first
        if last < first:
            raise ValueError(f"range {part!r} is reversed")
        if last > MAX_CPU:
            raise ValueError(f"cpu {last} is beyond {MAX_CPU}")
        cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))


def parse_size(value: str | int) -> int:
    """Bytes from ``"512MiB"``, ``"1GB"``, ``"256M"`` or an int."""
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE_RE.fullmatch(value.strip())
        if not m or m.group(2) not in _UNITS:
            raise ValueError("not a size: use bytes or a number with a "
                             "unit such as 512MiB, 1GB or 256M")
        size = int(decimal.Decimal(m.group(1)) * _UNITS[m.group(2)])
    if not 0 <= size < MAX_SIZE:
        raise ValueError(f"a size must be between 0 and {MAX_SIZE} bytes")
    return size


def _bad(key: str, value: object, reason: str) -> InvalidLimits:
    return InvalidLimits(key=key, value=value, reason=reason)


def _text(key: str, value: object, allow_bool: bool = False) -> str | int:
    if isinstance(value, bool) and not allow_bool:
        raise _bad(key, value, "expected a string or an integer")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return value.strip() if isinstance(value, str) else value
    raise _bad(key, value, "expected a string or an integer")


def _int(key: str, value: str | int, lo: int, hi: int) -> int:
    if not isinstance(value, int) and not _INT_RE.fullmatch(value):
        raise _bad(key, value, "expected an integer")
    n = int(value)
    if not lo <= n <= hi:
        raise _bad(key, value, f"must be between {lo} and {hi}")
    return n


def _percent(key: str, value: str, hi: float) -> float:
    try:
        pct = float(value[:-1])
    except ValueError:
        raise _bad(key, value, "expected a percentage such as 50%") from None
    if not 0 < pct <= hi:
        raise _bad(key, value, f"percentage must be above 0 and at most "
                               f"{hi:g}%")
    return pct


def _parse_cpu(value: str | int) -> dict[str, object]:
    key = "limits.cpu"
    if isinstance(value, int) or _INT_RE.fullmatch(value):
        return {"cpu_count": _int(key, value, 1, MAX_CPU + 1)}
    try:
        return {"cpuset": parse_cpuset(value)}
    except ValueError as exc:
        raise _bad(key, value, f"expected a cpu count such as 2 or a "
                               f"cpuset such as 0-1,3 ({exc})") from None


def _parse_time(key: str, value: str, text: str) -> int:
    m = _TIME_RE.fullmatch(text.strip())
    if not m:
        raise _bad(key, value, "expected a quota such as 25ms/100ms")
    return int(m.group(1)) * (1000 if m.group(2) == "ms" else 1)


def _parse_allowance(value: str | int) -> dict[str, object]:
    key = "limits.cpu.allowance"
    text = str(value)
    if text.endswith("%"):
        pct = _percent(key, text, 100.0 * MAX_SHARES / DEFAULT_SHARES)
        return {"pct": pct}
    quota, sep, period = text.partition("/")
    if not sep:
        raise _bad(key, value, "expected a share such as 50% or a quota "
                               "such as 25ms/100ms")
    quota_us = _parse_time(key, value, quota)
    period_us = _parse_time(key, value, period)
    if quota_us < MIN_QUOTA_US:
        raise _bad(key, value, "the quota must be at least 1ms (the "
                               "kernel's minimum)")
    if not MIN_PERIOD_US <= period_us <= MAX_PERIOD_US:
        raise _bad(key, value, "the period must be between 1ms and 1s")
    return {"cpu_quota_us": quota_us, "cpu_period_us": period_us}


def _parse_memory(value: str | int) -> dict[str, object]:
    key = "limits.memory"
    if isinstance(value, str) and value.endswith("%"):
        return {"memory_percent": _percent(key, value, 100.0)}
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise _bad(key, value, f"{exc}, or a percentage of host memory "
                               f"such as 50%") from None
    if size < MIN_MEMORY:
        raise _bad(key, value, "must be at least 4MiB")
    return {"memory_bytes": size}


def _parse_swap(value: str | int) -> dict[str, object]:
    key = "limits.memory.swap"
    text = str(value).lower()
    if text in _TRUE:
        return {"swap": True}
    if text in _FALSE:
        return {"swap": False}
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise _bad(key, value, f"expected true, false or a size ({exc})"
                   ) from None
    return {"swap": True, "swap_bytes": size} if size else {"swap": False}


def _parse_disk(key: str, value: str | int) -> dict[str, object]:
    """``"10MB"``, ``"100iops"`` or ``"10MB,100iops"`` (either order)."""
    direction = key.rsplit(".", 1)[1]
    out: dict[str, object] = {}
    for part in str(value).split(","):
        part = part.strip()
        m = _IOPS_RE.fullmatch(part)
        if m:
            field, n = f"disk_{direction}_iops", int(m.group(1))
            if not 1 <= n <= MAX_IOPS:
                raise _bad(key, value, f"iops must be between 1 and "
                                       f"{MAX_IOPS}")
        else:
            field = f"disk_{direction}_bps"
            try:
                n = parse_size(part)
            except ValueError as exc:
                raise _bad(key, value, f"expected bytes per second such as "
                                       f"10MB, operations per second such "
                                       f"as 100iops, or both comma "
                                       f"separated ({exc})") from None
            if n < 1:
                raise _bad(key, value, "a rate must be above 0 (leave "
                                       "the key unset for no limit)")
        if field in out:
            raise _bad(key, value, "give at most one rate and one iops "
                                   "value")
        out[field] = n
    return out


def _shares(pct: float | None, priority: int | None) -> int | None:
    """The documented allowance/priority -> cpu.shares mapping."""
    if pct is None and priority is None:
        return None
    pct = 100.0 if pct is None else pct
    prio = 10 if priority is None else priority
    shares = round(DEFAULT_SHARES * pct / 100 * (prio + 1) / 11)
    return min(MAX_SHARES, max(MIN_SHARES, shares))


def parse_limits(config: Mapping[str, object]) -> Limits:
    """The ``limits.*`` keys of ``config`` as ``Limits``.

    Other keys are ignored (the mapping may hold a whole instance
    config); an unknown ``limits.*`` key is an error naming the valid
    ones, so a typo never silently leaves a container unlimited.
    Empty strings and ``None`` mean "unset", as in LXD.
    """
    fields: dict[str, object] = {}
    pct = priority = None
    for key in sorted(config):
        if not key.startswith(PREFIX):
            continue
        raw = config[key]
        if key not in VALID_KEYS:
            raise _bad(key, raw, "unknown limit; valid keys are "
                                 + ", ".join(VALID_KEYS))
        if raw is None or raw == "":
            continue
        value = _text(key, raw, allow_bool=key == "limits.memory.swap")
        if key == "limits.cpu":
            fields.update(_parse_cpu(value))
        elif key == "limits.cpu.allowance":
            parsed = _parse_allowance(value)
            pct = parsed.pop("pct", None)
            fields.update(parsed)
        elif key == "limits.cpu.priority":
            priority = _int(key, value, 0, 10)
        elif key == "limits.memory":
            fields.update(_parse_memory(value))
        elif key == "limits.memory.swap":
            fields.update(_parse_swap(value))
        elif key.startswith("limits.disk."):
            fields.update(_parse_disk(key, value))
        else:
            fields["processes"] = _int(key, value, 1, MAX_PROCESSES)
    fields["cpu_shares"] = _shares(pct, priority)
    limits = Limits(**fields)  # type: ignore[arg-type]
    if (not limits.swap or limits.swap_bytes) and not limits.has_memory:
        raise _bad("limits.memory.swap", config["limits.memory.swap"],
                   "bounding swap needs limits.memory (swap is limited "
                   "on top of the memory limit)")
    return limits


def check_feasible(limits: Limits, host: HostInfo) -> None:
    """Refuse limits this host cannot honour, with the reason why."""
    cpus = host.online_cpus
    if limits.cpu_count is not None and limits.cpu_count > len(cpus):
        raise _bad("limits.cpu", limits.cpu_count,
                   f"this host has only {len(cpus)} online cpus")
    if limits.cpuset is not None:
        absent = sorted(set(limits.cpuset) - set(cpus))
        if absent:
            raise _bad("limits.cpu", format_cpuset(limits.cpuset),
                       f"cpus {format_cpuset(absent)} are not online on "
                       f"this host (online: {format_cpuset(cpus)})")
    if limits.cpu_quota_us is not None:
        quota, period = limits.cpu_quota_us, limits.cpu_period_us or 100000
        value = f"{quota}us/{period}us"
        usable = limits.cpu_count or len(limits.cpuset or cpus)
        if quota < MIN_QUOTA_US:
            raise _bad("limits.cpu.allowance", value,
                       "the quota must be at least 1ms")
        if quota > period * usable:
            raise _bad("limits.cpu.allowance", value,
                       f"that is {quota / period:g} cpus of time but the "
                       f"container can use only {usable} cpus")
    memory = limits.memory_limit(host.memory_bytes)
    if memory is not None:
        if memory < MIN_MEMORY:
            raise _bad("limits.memory", memory, "below the 4MiB minimum")
        if memory > host.memory_bytes:
            raise _bad("limits.memory", memory,
                       f"above this host's memory ({host.memory_bytes} "
                       f"bytes)")
    if (not limits.swap or limits.swap_bytes) and not host.swap_accounting:
        raise _bad("limits.memory.swap",
                   limits.swap_bytes or "false",
                   "this host has no swap accounting (boot with "
                   "swapaccount=1 or use cgroup v2 with memory.swap.max); "
                   "leave limits.memory.swap unset or true")
    if limits.has_disk:
        _check_disk(limits, host)
    needs = (("cpuset", "limits.cpu", limits.cpu_count or limits.cpuset),
             ("cpu", "limits.cpu.allowance",
              limits.cpu_shares or limits.cpu_quota_us),
             ("memory", "limits.memory", limits.memory_limit(
                 host.memory_bytes)),
             ("pids", "limits.processes", limits.processes))
    for controller, key, value in needs:
        if value and host.cgroups.version(controller) is None:
            raise _bad(key, value, f"this host has no {controller} cgroup "
                                   f"controller to enforce it")


def _check_disk(limits: Limits, host: HostInfo) -> None:
    reads = (limits.disk_read_bps, limits.disk_read_iops)
    writes = (limits.disk_write_bps, limits.disk_write_iops)
    direction, (bps, iops) = (("read", reads) if any(reads)
                              else ("write", writes))
    key = f"limits.disk.{direction}"
    value = ",".join(([str(bps)] if bps else [])
                     + ([f"{iops}iops"] if iops else []))
    if host.cgroups.version("blkio") is None:
        raise _bad(key, value, "this host has no blkio (cgroup v1) or io "
                               "(cgroup v2) controller to enforce it")
    if host.disk_device is None:
        raise _bad(key, value, host.disk_problem or "the disk holding the "
                               "containers directory is unknown")
