"""A container's network interfaces: veth pairs, one end in the container.

The engine knows nothing about Neutron: a :class:`Nic` says what the
kernel needs (the host-side device name, the bridge it joins, the MAC and
MTU the container sees). Whoever wires the host side (os-vif for Nova)
fills it in. Validated here because the values end up in liblxc's config
file, where a newline would be a new key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any

from nova_lxd.engine import errors

# Linux interface names: at most 15 bytes, no '/', ':' or whitespace.
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
MIN_MTU = 68       # IPv4's minimum
MAX_MTU = 65535
MIN_RATE = 8000             # bits/s: 1 kB/s, below that tc rounds to 0
MAX_RATE = 10**12           # 1 Tbit/s
MAX_BURST = 2**31           # bytes; tc keeps buffers in 32-bit ticks


@dataclasses.dataclass(frozen=True)
class Nic:
    name: str
    """The interface name inside the container (eth0)."""
    host_name: str
    """The host end of the veth pair (nova: the port's tap name)."""
    link: str | None = None
    """A bridge for the host end to join; None leaves it unattached."""
    hwaddr: str | None = None
    mtu: int | None = None
    ingress: int | None = None
    """Bits per second the container may receive; None = unlimited."""
    egress: int | None = None
    """Bits per second the container may send; None = unlimited."""
    ingress_burst: int | None = None
    """Bytes above ``ingress`` let through at once; None = a default
    (see ``containers.traffic``)."""
    egress_burst: int | None = None
    """Bytes above ``egress`` let through at once; None = a default."""

    def validate(self) -> Nic:
        for field in ("name", "host_name"):
            value = getattr(self, field)
            if not isinstance(value, str) or not _IFNAME.match(value):
                raise errors.InvalidNic(
                    nic=value, reason=f"{field} must be 1-15 letters, digits,"
                                      " '_', '.' or '-'")
        if self.link is not None and not _IFNAME.match(str(self.link)):
            raise errors.InvalidNic(nic=self.name,
                                    reason=f"bad bridge name {self.link!r}")
        if self.hwaddr is not None:
            mac = str(self.hwaddr).lower()
            if not _MAC.match(mac) or int(mac[:2], 16) & 1:
                raise errors.InvalidNic(
                    nic=self.name,
                    reason=f"{self.hwaddr!r} is not a unicast MAC address")
        if self.mtu is not None and not (
                isinstance(self.mtu, int) and MIN_MTU <= self.mtu <= MAX_MTU):
            raise errors.InvalidNic(
                nic=self.name,
                reason=f"MTU {self.mtu!r} is outside {MIN_MTU}-{MAX_MTU}")
        for field, lo, hi, unit in (
                ("ingress", MIN_RATE, MAX_RATE, "bits/s"),
                ("egress", MIN_RATE, MAX_RATE, "bits/s"),
                ("ingress_burst", 1, MAX_BURST, "bytes"),
                ("egress_burst", 1, MAX_BURST, "bytes")):
            value = getattr(self, field)
            if value is not None and (
                    not isinstance(value, int) or isinstance(value, bool)
                    or not lo <= value <= hi):
                raise errors.InvalidNic(
                    nic=self.name, reason=f"{field} {value!r} must be a "
                                          f"whole number of {unit} from "
                                          f"{lo} to {hi}")
        for field in ("ingress", "egress"):
            if getattr(self, f"{field}_burst") is not None and (
                    getattr(self, field) is None):
                raise errors.InvalidNic(
                    nic=self.name, reason=f"{field}_burst needs {field} "
                                          f"(a burst above no rate)")
        return self

    @property
    def limited(self) -> bool:
        """Whether the nic has a traffic limit to apply at start."""
        return self.ingress is not None or self.egress is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Nic:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise errors.InvalidNic(nic=data.get("name"),
                                    reason=f"unknown keys {sorted(unknown)}")
        return cls(**data).validate()


def validate_all(nics: Iterable[Nic | dict[str, Any]]) -> tuple[Nic, ...]:
    """Each nic valid, and no two with the same name on either side."""
    result = tuple(n.validate() if isinstance(n, Nic) else Nic.from_dict(n)
                   for n in nics)
    for attr in ("name", "host_name"):
        seen: set[str] = set()
        for nic in result:
            value = getattr(nic, attr)
            if value in seen:
                raise errors.InvalidNic(nic=value,
                                        reason=f"duplicate {attr}")
            seen.add(value)
    return result


def render(nics: Sequence[Nic]) -> list[tuple[str, str]]:
    """liblxc keys; no nics means an empty network namespace (loopback
    only), never the host's network."""
    if not nics:
        return [("lxc.net.0.type", "empty")]
    pairs: list[tuple[str, str]] = []
    for index, nic in enumerate(nics):
        key = f"lxc.net.{index}"
        pairs += [(f"{key}.type", "veth"),
                  (f"{key}.name", nic.name),
                  (f"{key}.veth.pair", nic.host_name),
                  (f"{key}.flags", "up")]
        if nic.link:
            pairs.append((f"{key}.link", nic.link))
        if nic.hwaddr:
            pairs.append((f"{key}.hwaddr", nic.hwaddr.lower()))
        if nic.mtu:
            pairs.append((f"{key}.mtu", str(nic.mtu)))
    return pairs
