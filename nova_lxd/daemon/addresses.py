"""The addresses clients can reach the HTTPS API at: what trust tokens
and ``GET /1.0`` advertise. A wildcard listen address (``0.0.0.0``,
``::``) is not one a client can use, so it is expanded into the host's
global addresses, as LXD does."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def split_address(address: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all addresses)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "::", int(port or 8443)


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_addresses(ipv6: bool) -> list[str]:
    """Global unicast addresses of the host's interfaces (``ip -j``)."""
    try:
        out = subprocess.run(["ip", "-j", "addr", "show", "scope",
                              "global"], capture_output=True, check=True,
                             timeout=10).stdout
        links = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        LOG.warning("Cannot list the host's addresses: %s", exc)
        return []
    found = []
    for link in links:
        for info in link.get("addr_info", []):
            local = info.get("local")
            if not local:
                continue
            if ipaddress.ip_address(local).version == 6 and not ipv6:
                continue
            found.append(local)
    return found


def advertised(https_address: str) -> list[str]:
    if not https_address:
        return []
    host, port = split_address(https_address)
    if host in ("0.0.0.0", "::"):
        return [_format(a, port) for a in host_addresses(host == "::")]
    return [_format(host, port)]
