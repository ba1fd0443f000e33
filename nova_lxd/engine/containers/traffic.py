"""Network rate limits of a container's nics, set with ``tc`` on the host
end of each veth, as LXD does for ``limits.ingress``/``limits.egress``.

The host end is the only place the container cannot undo them (inside,
its root owns the network namespace). What the container receives
leaves the host end: a token bucket (``tbf``) as that device's root
qdisc shapes it to ``ingress``. What the container sends arrives on the
host end: an ``ingress`` qdisc with a ``u32`` filter whose ``police``
action drops what exceeds ``egress`` (received traffic can be dropped,
not queued).

liblxc makes a new veth pair at every start and deletes it at stop, so
the limits are applied after each start (``apply``), from the nics in
the container's record. A container that reboots itself from inside
gets new veths from liblxc without passing through the engine: for
that, the same commands also run as its ``lxc.hook.start-host`` script
(``hook_script``), which liblxc runs on the host at every boot once the
veths exist.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence

from oslo_log import log as logging

from nova_lxd.engine import errors
from nova_lxd.engine.nics import Nic

LOG = logging.getLogger(__name__)

TC = "tc"
MIN_BURST = 64 * 1024
"""Bytes: at least one GSO super-packet (64 KiB) fits in the bucket."""
BURST_SECONDS = 0.05
"""The default burst is this long at the rate (if above MIN_BURST)."""
LATENCY = "50ms"
"""How long a packet may wait in the ingress token bucket's queue."""
POLICE_MTU = "64kb"
_TIMEOUT = 10
_PROBE_LOCK = threading.Lock()
_POLICE_PROBE: dict[str, str | None] = {}


def default_burst(rate_bits: int) -> int:
    """The bucket size (bytes) for a rate when none is given."""
    return max(MIN_BURST, int(rate_bits / 8 * BURST_SECONDS))


def _ingress(nic: Nic, tc: str) -> list[str]:
    assert nic.ingress is not None
    burst = nic.ingress_burst or default_burst(nic.ingress)
    return [tc, "qdisc", "replace", "dev", nic.host_name, "root", "tbf",
            "rate", f"{nic.ingress}bit", "burst", str(burst),
            "latency", LATENCY]


def _egress(nic: Nic, tc: str) -> list[list[str]]:
    assert nic.egress is not None
    burst = nic.egress_burst or default_burst(nic.egress)
    dev = nic.host_name
    return [[tc, "qdisc", "add", "dev", dev, "handle", "ffff:", "ingress"],
            [tc, "filter", "add", "dev", dev, "parent", "ffff:",
             "protocol", "all", "prio", "1", "u32", "match", "u32", "0",
             "0", "police", "rate", f"{nic.egress}bit", "burst",
             str(burst), "mtu", POLICE_MTU, "drop"]]


def commands(nic: Nic, tc: str = TC) -> list[tuple[list[str], bool]]:
    """``(argv, must_succeed)`` setting ``nic``'s limits from scratch.

    The deletes come first so that applying twice leaves one set of
    qdiscs; they fail harmlessly on a fresh veth (nothing to delete).
    """
    if not nic.limited:
        return []
    dev = nic.host_name
    out: list[tuple[list[str], bool]] = [
        ([tc, "qdisc", "del", "dev", dev, "root"], False),
        ([tc, "qdisc", "del", "dev", dev, "ingress"], False)]
    if nic.ingress is not None:
        out.append((_ingress(nic, tc), True))
    if nic.egress is not None:
        out += [(argv, True) for argv in _egress(nic, tc)]
    return out


def hook_script(nics: Iterable[Nic], tc: str | None = None) -> str | None:
    """A ``/bin/sh`` script applying the limits of ``nics`` (None when
    none is limited), for ``lxc.hook.start-host``: its failure fails the
    boot, so a container never runs without its limits."""
    tc = tc or shutil.which(TC) or TC  # liblxc's PATH may lack sbin
    lines = ["#!/bin/sh",
             "# Network limits (nova_lxd.engine.containers.traffic)",
             "set -e"]
    for nic in nics:
        for argv, must in commands(nic, tc):
            line = " ".join(shlex.quote(a) for a in argv)
            lines.append(line if must else f"{line} 2>/dev/null || true")
    if len(lines) == 3:
        return None
    return "\n".join(lines) + "\n"


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True,
                          timeout=_TIMEOUT, check=False)


def apply(name: str, nics: Iterable[Nic], tc: str | None = None) -> None:
    """Set the limits of every limited nic; TrafficLimitFailed names the
    command and tc's complaint when one does not take."""
    tc = tc or TC
    for nic in nics:
        for argv, must in commands(nic, tc):
            try:
                result = _run(argv)
            except (OSError, subprocess.SubprocessError) as exc:
                raise errors.TrafficLimitFailed(
                    name=name, nic=nic.host_name,
                    reason=f"{' '.join(argv)}: {exc}") from exc
            if must and result.returncode != 0:
                raise errors.TrafficLimitFailed(
                    name=name, nic=nic.host_name,
                    reason=f"{' '.join(argv)}: "
                           f"{result.stderr.strip() or result.returncode}")
        if nic.limited:
            LOG.info("Container %s: %s limited to ingress %s, egress %s "
                     "bit/s", name, nic.host_name, nic.ingress, nic.egress)


def _probe_police(tc: str) -> str | None:
    """Police a throwaway veth; None when that works, else why not."""
    dev = f"nlxq{os.getpid() % 0xffffff:06x}"
    made = _run(["ip", "link", "add", dev, "type", "veth", "peer", "name",
                 dev + "p"])
    if made.returncode != 0:
        return f"cannot make a probe veth: {made.stderr.strip()}"
    try:
        probe = Nic("probe", dev, egress=1_000_000)
        for argv in _egress(probe, tc):
            result = _run(argv)
            if result.returncode != 0:
                return (f"this kernel cannot police received traffic "
                        f"(tc police needs CONFIG_NET_ACT_POLICE, "
                        f"CONFIG_NET_CLS_U32 and CONFIG_NET_SCH_INGRESS): "
                        f"{result.stderr.strip()}")
        return None
    finally:
        _run(["ip", "link", "del", dev])


def egress_problem(tc: str = TC) -> str | None:
    """Why ``egress`` limits cannot work on this host (None: they can).
    Found by trying once per process: kernel configs differ."""
    with _PROBE_LOCK:
        if tc not in _POLICE_PROBE:
            try:
                _POLICE_PROBE[tc] = _probe_police(tc)
            except (OSError, subprocess.SubprocessError) as exc:
                _POLICE_PROBE[tc] = f"cannot run ip or {tc}: {exc}"
        return _POLICE_PROBE[tc]


def clear_probe_cache() -> None:
    with _PROBE_LOCK:
        _POLICE_PROBE.clear()


def check_supported(nics: Iterable[Nic], tc: str = TC) -> None:
    """Refuse, before anything exists, limits this host cannot apply."""
    limited = [nic for nic in nics if nic.limited]
    if not limited:
        return
    if shutil.which(tc) is None:
        raise errors.InvalidNic(
            nic=limited[0].name,
            reason=f"traffic limits need {tc} (Debian's iproute2)")
    for nic in limited:
        if nic.egress is not None:
            problem = egress_problem(tc)
            if problem:
                raise errors.InvalidNic(nic=nic.name,
                                        reason=f"egress limit: {problem}")
