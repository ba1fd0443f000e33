"""Cold moves between hosts, through the hosts' daemons.

The source offers the stopped container on its daemon (a migration
operation waiting for the target to connect) and hands the offer to
Nova as ``disk_info``, which Nova passes to the destination's
``finish_migration``; there the destination's daemon pulls the
container over mutually authenticated HTTPS (each daemon trusts the
other's certificate) and commits it only once the stream checked out.
The source's container is left stopped and untouched until Nova
confirms the move (it is what a revert starts again).

Live moves go the other way round (push): the destination's daemon
waits for the container (``receive``) and the destination hands its
operation to the source through Nova's migrate data; the source's daemon
dumps the running container with CRIU and dials it (``push_live``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

from nova_lxd.client.local import DaemonError, LocalDaemon

FETCH_TIMEOUT = 3600.0


class MoveError(Exception):
    """Why a container cannot move; the message is for the user."""


def offer(daemon: LocalDaemon, name: str, my_ip: str) -> str:
    """Offer ``name`` for another host to fetch; returns the offer (JSON,
    Nova's ``disk_info``)."""
    address, certificate = _https(daemon, my_ip)
    try:
        op = daemon.start("POST", f"/1.0/instances/{quote(name, safe='')}",
                          {"migration": True})
    except DaemonError as exc:
        raise MoveError(f"nlxd would not offer {name}: {exc}") from exc
    return _peer_json(address, op, certificate)


def receive(daemon: LocalDaemon, name: str, my_ip: str) -> str:
    """Wait here for ``name`` to be pushed by another host's daemon (a
    live move); returns where to push it (JSON: operation, secrets,
    certificate), which ``withdraw`` cancels."""
    address, certificate = _https(daemon, my_ip)
    try:
        op = daemon.start("POST", "/1.0/instances", {
            "name": name, "source": {"type": "migration", "mode": "push"}})
    except DaemonError as exc:
        raise MoveError(f"nlxd would not receive {name}: {exc}") from exc
    return _peer_json(address, op, certificate)


def push_live(daemon: LocalDaemon, name: str, target_json: str,
              timeout: float = FETCH_TIMEOUT) -> None:
    """Move the running ``name`` to the daemon waiting at ``target_json``
    (``receive``): dumped, streamed, restored there, running; this
    host's container is left stopped for the caller to delete."""
    target = _parse(target_json, "the destination host's receiver")
    try:
        op = daemon.start("POST", f"/1.0/instances/{quote(name, safe='')}",
                          {"migration": True, "live": True,
                           "target": target})
        daemon.wait(op, timeout)
    except DaemonError as exc:
        raise MoveError(f"could not move {name} live: {exc}") from exc


def withdraw(daemon: LocalDaemon, offer_json: str) -> None:
    """Cancel an offer nobody will fetch (best effort: it expires)."""
    try:
        path = urlsplit(json.loads(offer_json)["operation"]).path
        daemon.request("DELETE", path)
    except (DaemonError, ValueError, KeyError):
        pass


def fetch(daemon: LocalDaemon, name: str, offer_json: str) -> None:
    """Receive the offered container here, under ``name``; all or
    nothing."""
    peer = _parse(offer_json)
    try:
        op = daemon.start("POST", "/1.0/instances", {
            "name": name, "source": {"type": "migration", "mode": "pull",
                                     **peer}})
        daemon.wait(op, FETCH_TIMEOUT)
    except DaemonError as exc:
        raise MoveError(f"could not fetch {name}: {exc}") from exc


def is_offer(disk_info: Any) -> bool:
    """Whether ``disk_info`` is an offer (a same-host resize has none)."""
    return isinstance(disk_info, str) and disk_info.startswith("{")


def _https(daemon: LocalDaemon, my_ip: str) -> tuple[str, str]:
    """This daemon's HTTPS address that matches ``my_ip`` (else its
    first) and its certificate (PEM)."""
    try:
        info = daemon.get("/1.0")
    except DaemonError as exc:
        raise MoveError(f"this host's nlxd cannot be asked: {exc}") from exc
    env = info.get("environment") or {}
    addresses = env.get("addresses") or []
    if not addresses or not env.get("certificate"):
        raise MoveError("this host's nlxd serves no HTTPS: set its [daemon] "
                        "https_address so that other hosts can move "
                        "instances to and from it")
    address = next((a for a in addresses if _host(a) == my_ip),
                   addresses[0])
    return address, env["certificate"]


def _peer_json(address: str, op: dict[str, Any], certificate: str) -> str:
    return json.dumps({
        "operation": f"https://{address}/1.0/operations/{op['id']}",
        "secrets": op["metadata"], "certificate": certificate})


def _parse(offer_json: str, what: str = "the source host's offer"
           ) -> dict[str, Any]:
    try:
        data = json.loads(offer_json)
        return {k: data[k] for k in ("operation", "secrets", "certificate")}
    except (ValueError, KeyError, TypeError):
        raise MoveError(f"{what} is not readable") from None


def _host(address: str) -> str:
    return urlsplit(f"//{address}").hostname or ""
