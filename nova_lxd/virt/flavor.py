"""Flavors into container specs: pure translators, no nova import.

Nova's flavor (vcpus, memory_mb, root_gb, extra specs) becomes the
engine's LXD-style limit keys and switches. Switches that weaken
isolation (``lxc:privileged``, ``lxc:nesting``, ``lxc:isolated_idmap``
false) pass only where the operator allows them.

Extra specs understood (values are strings, as nova stores them):

==============================  ============================================
``quota:cpu_quota`` +           hard cpu quota per period, microseconds (as
``quota:cpu_period``            the libvirt driver reads them)
``quota:cpu_shares``            relative cpu weight, libvirt's default 1024:
                                ``limits.cpu.allowance`` ``shares/1024`` as
                                a percentage (``512`` -> ``50%``); refused
                                beside ``quota:cpu_quota`` (both set it)
``quota:disk_read_bytes_sec``   ``limits.disk.read`` bytes/s
``quota:disk_read_iops_sec``    ``limits.disk.read`` ``<n>iops``
``quota:disk_write_bytes_sec``  ``limits.disk.write`` bytes/s
``quota:disk_write_iops_sec``   ``limits.disk.write`` ``<n>iops``
``quota:disk_total_*``          refused: the kernel throttles read and write
                                separately, never their sum
``quota:vif_inbound_average``   KiB/s the instance may receive:
                                ``ContainerSpec.nic_ingress`` (bits/s)
``quota:vif_inbound_burst``     KiB: ``nic_ingress_burst`` (bytes)
``quota:vif_outbound_average``  KiB/s the instance may send:
                                ``ContainerSpec.nic_egress`` (bits/s)
``quota:vif_outbound_burst``    KiB: ``nic_egress_burst`` (bytes)
``quota:vif_*_peak``            refused: a token bucket has no peak rate
``lxc:cpu_allowance``           ``limits.cpu.allowance`` (``50%``,
                                ``25ms/100ms``)
``lxc:cpu_priority``            ``limits.cpu.priority`` (0-10)
``lxc:processes``               ``limits.processes``
``lxc:memory_swap``             ``limits.memory.swap``
                                (``true``/``false``/size)
``lxc:privileged``              run without an id map (operator must allow)
``lxc:nesting``                 allow containers inside (operator must
                                allow)
``lxc:isolated_idmap``          ``false`` shares one id range (operator
                                must allow)
``lxc:stateful``                ``true``: created stateful (LXD's
                                ``migration.stateful``), so CRIU can dump
                                and restore it: live migration
==============================  ============================================

Zero, as in libvirt, leaves a disk or vif value unlimited. The nic
limits are not engine limit keys: the driver puts them on every ``Nic``
it makes for the instance (``ingress``/``egress``, ``*_burst``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from nova_lxd.engine import errors

GiB = 1024 ** 3
KiB = 1024
DEFAULT_CPU_SHARES = 1024
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class UnsupportedFlavor(errors.InvalidInput):
    msg_fmt = "Flavor %(flavor)s cannot be used here: %(reason)s."


class FlavorLike(Protocol):
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    extra_specs: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Policy:
    """What the operator lets flavors ask for."""

    allow_privileged: bool = False
    allow_nesting: bool = False
    allow_shared_idmap: bool = False


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    limits: dict[str, str]
    privileged: bool = False
    nesting: bool = False
    isolated_idmap: bool = True
    root_disk_bytes: int | None = None
    """Enforced where the storage can (later); reported otherwise."""
    nic_ingress: int | None = None
    """Bits/s each nic may receive (``Nic.ingress``); None: unlimited."""
    nic_ingress_burst: int | None = None
    """Bytes (``Nic.ingress_burst``); None: the engine's default."""
    nic_egress: int | None = None
    """Bits/s each nic may send (``Nic.egress``); None: unlimited."""
    nic_egress_burst: int | None = None
    """Bytes (``Nic.egress_burst``); None: the engine's default."""
    stateful: bool = False
    """Created so that CRIU can dump it (``lxc:stateful``): it can move
    live."""


def translate(flavor: FlavorLike, policy: Policy | None = None
              ) -> ContainerSpec:
    """The container a flavor asks for; UnsupportedFlavor when it asks
    for something malformed or that the operator does not allow."""
    policy = policy or Policy()
    specs = dict(flavor.extra_specs or {})
    limits: dict[str, str] = {}
    if flavor.vcpus:
        limits["limits.cpu"] = str(int(flavor.vcpus))
    if flavor.memory_mb:
        limits["limits.memory"] = f"{int(flavor.memory_mb)}MiB"
    limits.update(_cpu_quota(flavor, specs))
    shares = _cpu_shares(flavor, specs)
    if shares and limits.get("limits.cpu.allowance"):
        raise UnsupportedFlavor(
            flavor=flavor.name,
            reason="quota:cpu_shares and quota:cpu_quota both set "
                   "limits.cpu.allowance (a share or a quota, not both)")
    limits.update(shares)
    limits.update(_disk(flavor, specs))
    for spec, key in (("lxc:cpu_allowance", "limits.cpu.allowance"),
                      ("lxc:cpu_priority", "limits.cpu.priority"),
                      ("lxc:processes", "limits.processes"),
                      ("lxc:memory_swap", "limits.memory.swap")):
        if spec in specs:
            if key in limits:
                raise UnsupportedFlavor(
                    flavor=flavor.name,
                    reason=f"{spec} contradicts quota:cpu_quota or "
                           f"quota:cpu_shares (both set {key})")
            limits[key] = str(specs[spec])
    privileged = _switch(flavor, specs, "lxc:privileged", False)
    nesting = _switch(flavor, specs, "lxc:nesting", False)
    isolated = _switch(flavor, specs, "lxc:isolated_idmap", True)
    stateful = _switch(flavor, specs, "lxc:stateful", False)
    _check_policy(flavor, policy, privileged, nesting, isolated)
    return ContainerSpec(
        limits=limits, privileged=privileged, nesting=nesting,
        isolated_idmap=isolated, stateful=stateful,
        root_disk_bytes=(int(flavor.root_gb) * GiB if flavor.root_gb
                         else None),
        **_vif(flavor, specs))


def _count(flavor: FlavorLike, specs: dict[str, Any], key: str) -> int:
    """A non-negative whole number from an extra spec (0 if absent)."""
    value = specs.get(key)
    if value is None or str(value).strip() == "":
        return 0
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if number < 0:
        raise UnsupportedFlavor(flavor=flavor.name,
                                reason=f"{key}={value!r} is not a whole "
                                       f"number >= 0")
    return number


def _cpu_shares(flavor: FlavorLike, specs: dict[str, Any]
                ) -> dict[str, str]:
    if specs.get("quota:cpu_shares") is None:
        return {}
    shares = _count(flavor, specs, "quota:cpu_shares")
    if not MIN_CPU_SHARES <= shares <= MAX_CPU_SHARES:
        raise UnsupportedFlavor(
            flavor=flavor.name,
            reason=f"quota:cpu_shares must be between {MIN_CPU_SHARES} "
                   f"and {MAX_CPU_SHARES} (the default is "
                   f"{DEFAULT_CPU_SHARES})")
    pct = shares * 100 / DEFAULT_CPU_SHARES
    return {"limits.cpu.allowance": f"{pct:.6g}%"}


def _disk(flavor: FlavorLike, specs: dict[str, Any]) -> dict[str, str]:
    total = sorted(k for k in specs if k.startswith("quota:disk_total_"))
    if total:
        raise UnsupportedFlavor(
            flavor=flavor.name,
            reason=f"{', '.join(total)}: the kernel throttles reads and "
                   f"writes separately, not their sum; use "
                   f"quota:disk_read_* and quota:disk_write_*")
    out = {}
    for direction in ("read", "write"):
        rate = _count(flavor, specs, f"quota:disk_{direction}_bytes_sec")
        iops = _count(flavor, specs, f"quota:disk_{direction}_iops_sec")
        parts = ([str(rate)] if rate else []) + (
            [f"{iops}iops"] if iops else [])
        if parts:
            out[f"limits.disk.{direction}"] = ",".join(parts)
    return out


def _vif(flavor: FlavorLike, specs: dict[str, Any]) -> dict[str, Any]:
    """libvirt's vif quotas (KiB/s, KiB) as the nic limits (bits/s,
    bytes); inbound is what the instance receives."""
    peak = sorted(k for k in specs if k.startswith("quota:vif_")
                  and k.endswith("_peak"))
    if peak:
        raise UnsupportedFlavor(
            flavor=flavor.name,
            reason=f"{', '.join(peak)}: containers get one rate and a "
                   f"burst per direction (token bucket), no peak rate")
    out: dict[str, Any] = {}
    for direction, field in (("inbound", "nic_ingress"),
                             ("outbound", "nic_egress")):
        average = _count(flavor, specs, f"quota:vif_{direction}_average")
        burst = _count(flavor, specs, f"quota:vif_{direction}_burst")
        if burst and not average:
            raise UnsupportedFlavor(
                flavor=flavor.name,
                reason=f"quota:vif_{direction}_burst needs "
                       f"quota:vif_{direction}_average")
        if average:
            out[field] = average * KiB * 8
            out[f"{field}_burst"] = burst * KiB if burst else None
    return out


def _cpu_quota(flavor: FlavorLike, specs: dict[str, Any]) -> dict[str, str]:
    quota = specs.get("quota:cpu_quota")
    period = specs.get("quota:cpu_period")
    if quota is None and period is None:
        return {}
    try:
        quota_us = int(quota) if quota is not None else None
        period_us = int(period) if period is not None else 100_000
    except ValueError:
        raise UnsupportedFlavor(
            flavor=flavor.name,
            reason="quota:cpu_quota and quota:cpu_period must be whole "
                   "microseconds") from None
    if quota_us is None or quota_us <= 0:
        return {}  # as libvirt: no (or a negative) quota means unlimited
    return {"limits.cpu.allowance": f"{quota_us}us/{period_us}us"}


def _switch(flavor: FlavorLike, specs: dict[str, Any], key: str,
            default: bool) -> bool:
    value = specs.get(key)
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UnsupportedFlavor(flavor=flavor.name,
                            reason=f"{key}={value!r} is not true or false")


def _check_policy(flavor: FlavorLike, policy: Policy, privileged: bool,
                  nesting: bool, isolated: bool) -> None:
    refused = []
    if privileged and not policy.allow_privileged:
        refused.append("lxc:privileged")
    if nesting and not policy.allow_nesting:
        refused.append("lxc:nesting")
    if not isolated and not policy.allow_shared_idmap:
        refused.append("lxc:isolated_idmap=false")
    if refused:
        raise UnsupportedFlavor(
            flavor=flavor.name,
            reason="the operator does not allow " + ", ".join(refused))
