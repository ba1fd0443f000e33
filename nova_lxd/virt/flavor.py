"""Flavors into container specs: pure translators, no nova import.

Nova's flavor (vcpus, memory_mb, root_gb, extra specs) becomes the
engine's LXD-style limit keys and switches. Switches that weaken
isolation (``lxc:privileged``, ``lxc:nesting``, ``lxc:isolated_idmap``
false) pass only where the operator allows them.

Extra specs understood (values are strings, as nova stores them):

=======================  ==================================================
``quota:cpu_quota`` +    hard cpu quota per period, microseconds (as the
``quota:cpu_period``     libvirt driver reads them)
``lxc:cpu_allowance``    ``limits.cpu.allowance`` (``50%``, ``25ms/100ms``)
``lxc:cpu_priority``     ``limits.cpu.priority`` (0-10)
``lxc:processes``        ``limits.processes``
``lxc:memory_swap``      ``limits.memory.swap`` (``true``/``false``/size)
``lxc:privileged``       run without an id map (operator must allow)
``lxc:nesting``          allow containers inside (operator must allow)
``lxc:isolated_idmap``   ``false`` shares one id range (operator must allow)
=======================  ==================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from nova_lxd.engine import errors

GiB = 1024 ** 3
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
    for spec, key in (("lxc:cpu_allowance", "limits.cpu.allowance"),
                      ("lxc:cpu_priority", "limits.cpu.priority"),
                      ("lxc:processes", "limits.processes"),
                      ("lxc:memory_swap", "limits.memory.swap")):
        if spec in specs:
            if key in limits:
                raise UnsupportedFlavor(
                    flavor=flavor.name,
                    reason=f"{spec} contradicts quota:cpu_quota")
            limits[key] = str(specs[spec])
    privileged = _switch(flavor, specs, "lxc:privileged", False)
    nesting = _switch(flavor, specs, "lxc:nesting", False)
    isolated = _switch(flavor, specs, "lxc:isolated_idmap", True)
    _check_policy(flavor, policy, privileged, nesting, isolated)
    return ContainerSpec(
        limits=limits, privileged=privileged, nesting=nesting,
        isolated_idmap=isolated,
        root_disk_bytes=(int(flavor.root_gb) * GiB if flavor.root_gb
                         else None))


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
