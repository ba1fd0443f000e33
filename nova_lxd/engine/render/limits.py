"""Limits -> liblxc cgroup keys, v1 or v2 per controller.

On a hybrid host (cgroup2 mounted beside v1 controllers) each controller
is set through the hierarchy that serves it: ``lxc.cgroup.*`` for v1,
``lxc.cgroup2.*`` for v2.
"""

from __future__ import annotations

import dataclasses

from nova_lxd.engine.errors import InvalidLimits
from nova_lxd.engine.host import CgroupLayout, HostInfo
from nova_lxd.engine.limits import Limits, check_feasible, format_cpuset

Config = list[tuple[str, str]]
DEFAULT_PERIOD_US = 100000


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000].

    The standard linear conversion used by runc and crun. Note that it
    maps the v1 default (1024) to 39, not to the v2 default (100).
    """
    shares = min(262144, max(2, shares))
    return 1 + ((shares - 2) * 9999) // 262142


def pick_cpus(count: int, online: tuple[int, ...]) -> tuple[int, ...]:
    """The cpus a bare count pins to: the lowest-numbered online ones.

    Deterministic and simple; it does not spread containers over the
    host (LXD rebalances at run time, we do not yet).
    """
    if count > len(online):
        raise InvalidLimits(key="limits.cpu", value=count,
                            reason=f"this host has only {len(online)} "
                                   f"online cpus")
    return tuple(sorted(online)[:count])


def _prefix(layout: CgroupLayout, controller: str) -> str:
    """The liblxc key prefix of the hierarchy serving ``controller``."""
    version = layout.version(controller)
    if version is None:  # check_feasible refuses this first
        raise InvalidLimits(key=f"({controller} controller)", value=None,
                            reason="this host lacks the controller")
    return "lxc.cgroup." if version == "v1" else "lxc.cgroup2."


def _cpu(limits: Limits, layout: CgroupLayout, host: HostInfo) -> Config:
    out: Config = []
    cpus = limits.cpuset
    if limits.cpu_count is not None:
        cpus = pick_cpus(limits.cpu_count, host.online_cpus)
    if cpus is not None:
        out.append((_prefix(layout, "cpuset") + "cpuset.cpus",
                    format_cpuset(cpus)))
    shares, quota = limits.cpu_shares, limits.cpu_quota_us
    period = limits.cpu_period_us or DEFAULT_PERIOD_US
    if shares is None and quota is None:
        return out
    if _prefix(layout, "cpu") == "lxc.cgroup.":
        if shares is not None:
            out.append(("lxc.cgroup.cpu.shares", str(shares)))
        if quota is not None:
            out += [("lxc.cgroup.cpu.cfs_period_us", str(period)),
                    ("lxc.cgroup.cpu.cfs_quota_us", str(quota))]
    else:
        if shares is not None:
            out.append(("lxc.cgroup2.cpu.weight",
                        str(shares_to_weight(shares))))
        if quota is not None:
            out.append(("lxc.cgroup2.cpu.max", f"{quota} {period}"))
    return out


def _memory(limits: Limits, layout: CgroupLayout, host: HostInfo) -> Config:
    memory = limits.memory_limit(host.memory_bytes)
    if memory is None:
        return []
    if _prefix(layout, "memory") == "lxc.cgroup.":
        # The limit first: v1 refuses memsw below limit_in_bytes.
        out = [("lxc.cgroup.memory.limit_in_bytes", str(memory))]
        if not limits.swap:
            out.append(("lxc.cgroup.memory.memsw.limit_in_bytes",
                        str(memory)))
        elif limits.swap_bytes is not None:
            out.append(("lxc.cgroup.memory.memsw.limit_in_bytes",
                        str(memory + limits.swap_bytes)))
        return out
    if not limits.swap:
        swap = "0"
    elif limits.swap_bytes is not None:
        swap = str(limits.swap_bytes)
    else:
        swap = "max"
    return [("lxc.cgroup2.memory.max", str(memory)),
            ("lxc.cgroup2.memory.swap.max", swap)]


def _disk(limits: Limits, layout: CgroupLayout, host: HostInfo) -> Config:
    """blkio throttle files (v1), one per direction and unit, or one
    ``io.max`` line (v2), on the disk of the containers directory."""
    if not limits.has_disk:
        return []
    dev = host.disk_device  # check_feasible refused a None first
    values = (("read_bps", "rbps", limits.disk_read_bps),
              ("write_bps", "wbps", limits.disk_write_bps),
              ("read_iops", "riops", limits.disk_read_iops),
              ("write_iops", "wiops", limits.disk_write_iops))
    if _prefix(layout, "blkio") == "lxc.cgroup.":
        return [(f"lxc.cgroup.blkio.throttle.{name}_device", f"{dev} {n}")
                for name, _, n in values if n is not None]
    io_max = " ".join(f"{key}={n}" for _, key, n in values if n is not None)
    return [("lxc.cgroup2.io.max", f"{dev} {io_max}")]


def render_limits(limits: Limits, layout: CgroupLayout,
                  host: HostInfo) -> Config:
    """liblxc config items enforcing ``limits`` on this host.

    Checks feasibility first (``check_feasible``), so it never emits a
    value the kernel would refuse at start. ``layout`` is normally
    ``host.cgroups``; it is separate so callers can render for another
    layout (tests, migration targets).
    """
    if host.cgroups != layout:
        host = dataclasses.replace(host, cgroups=layout)
    check_feasible(limits, host)
    out = _cpu(limits, layout, host) + _memory(limits, layout, host)
    if limits.processes is not None:
        out.append((_prefix(layout, "pids") + "pids.max",
                    str(limits.processes)))
    return out + _disk(limits, layout, host)
