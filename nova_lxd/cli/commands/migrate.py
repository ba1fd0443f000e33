"""``copy`` and ``move``: on one remote, or between two as lxc does.

On one daemon a copy is ``source.type = copy`` and a move is a rename.
Between daemons both are LXD migrations, and the daemon reachable over
HTTPS is the one dialed: *pull* when the source is an HTTPS remote (the
target dials the source's operation), *push* when only the target is
(the source dials the target's). Two unix sockets of different daemons
cannot reach each other at all. The dialing daemon presents its server
certificate, so each daemon must trust the other's (``doc/cli.rst``).

The dialing side's operation ends first (it fails at once when it cannot
connect, while the other side would wait minutes for a caller), so it is
waited for first and the other one cancelled if it failed. A move
deletes its source only once both operations succeeded.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from nova_lxd.cli import address, transport
from nova_lxd.cli.address import Target
from nova_lxd.cli.client import Client, operation_path, q
from nova_lxd.cli.commands.instances import rename, run, say, set_state
from nova_lxd.cli.config import Remote
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import ApiError, CliError, NotFound

SAME, PULL, PUSH = "same", "pull", "push"
ACTIVE = ("running", "frozen")
TRUST_HINT = "'Copy and move' in doc/cli.rst"


def register(sub) -> None:
    for command, aliases, text in (
            ("copy", ["cp"], "copy an instance (to another remote too)"),
            ("move", ["mv"], "rename an instance, or move it to another "
                             "remote")):
        p = sub.add_parser(command, aliases=aliases, help=text)
        p.add_argument("source", metavar="[REMOTE:]NAME")
        p.add_argument("destination", metavar="[REMOTE:][NEW_NAME]",
                       nargs="?" if command == "copy" else None)
        p.add_argument("--instance-only", action="store_true",
                       help="leave the snapshots behind")
        p.add_argument("--stateless", action="store_true",
                       help="a running instance: its files only (a move "
                            "stops it first and starts it on the target)")
        p.add_argument("--live", action="store_true",
                       help="a running instance with its running state "
                            "(CRIU)")
        p.set_defaults(func=copy if command == "copy" else move)


@dataclass(frozen=True)
class Plan:
    """Where an instance comes from and goes to, and how."""

    source: Target
    target: Target
    mode: str


def choose_mode(source: Remote, target: Remote) -> str:
    """SAME, PULL or PUSH for two remotes, or why neither daemon can
    reach the other."""
    if source.name == target.name or (
            source.is_unix and target.is_unix
            and source.socket_path == target.socket_path):
        return SAME
    if not source.is_unix:
        return PULL
    if not target.is_unix:
        return PUSH
    raise CliError(f"remotes {source.name!r} and {target.name!r} are unix "
                   f"sockets of two daemons, which cannot reach each "
                   f"other: add one of them as an HTTPS remote (nlxc "
                   f"remote add) and use that")


def plan(ctx: Context, source_text: str, destination: str | None) -> Plan:
    """``[remote:]name`` and ``[remote:][new_name]`` -> a Plan; the new
    name defaults to the source's."""
    source = address.parse(ctx.config, source_text)
    if not source.name:
        raise CliError(f"{source_text!r}: an instance name is required")
    target = (address.parse(ctx.config, destination) if destination
              else Target(source.remote, ""))
    name = target.name or address.split_snapshot(source.name)[0]
    if "/" in name:
        raise CliError(f"{name!r}: '/' is not allowed in a name")
    target = Target(target.remote, name)
    mode = choose_mode(ctx.config.remote(source.remote),
                       ctx.config.remote(target.remote))
    return Plan(source, target, mode)


def _planned(ctx: Context, args) -> tuple[Plan, Client]:
    """The plan (SAME too for two remote names of one daemon, told by
    its certificate) and the source's client."""
    p = plan(ctx, args.source, args.destination)
    src = ctx.client(p.source.remote)
    if p.mode != SAME and _same_daemon(src, ctx.client(p.target.remote)):
        p = Plan(p.source, p.target, SAME)
    return p, src


def copy(ctx: Context, args) -> int:
    p, src = _planned(ctx, args)
    if p.mode == SAME:
        if p.target.name == p.source.name:
            raise CliError("a copy on the same remote needs a new name")
        say(ctx, f"Copying {p.source.name} to {p.target.name}")
        run(ctx, src, "POST", "/1.0/instances", f"copy {p.source.name}",
            json={"name": p.target.name, "type": "container",
                  "source": {"type": "copy", "source": p.source.name,
                             "instance_only": args.instance_only}})
        return 0
    _check_running(src, p.source.name, args, "copy")
    migrate(ctx, p, instance_only=args.instance_only, live=args.live)
    return 0


def move(ctx: Context, args) -> int:
    p, src = _planned(ctx, args)
    if p.mode == SAME:
        # One daemon, maybe under two remote names: its rename.
        args.name = f"{p.source.remote}:{p.source.name}"
        args.new_name = f"{p.source.remote}:{p.target.name}"
        return rename(ctx, args)
    running = _check_running(src, p.source.name, args, "move")
    stop_first = running and not args.live
    if stop_first:
        say(ctx, f"Stopping {p.source.name}")
        set_state(ctx, src, p.source.name, {"action": "stop"})
    try:
        migrate(ctx, p, instance_only=args.instance_only, live=args.live)
    except BaseException:
        if stop_first:  # as it was; the migration's error is the news
            with suppress(CliError):
                set_state(ctx, src, p.source.name, {"action": "start"})
        raise
    dst = ctx.client(p.target.remote)
    if stop_first:
        say(ctx, f"Starting {p.target.name}")
        set_state(ctx, dst, p.target.name, {"action": "start"})
    run(ctx, src, "DELETE", f"/1.0/instances/{q(p.source.name)}",
        f"delete {p.source.name}")
    return 0


def _check_running(client: Client, name: str, args, verb: str) -> bool:
    """Whether ``name`` runs; refused unless --stateless or --live says
    what to do with its running state (as lxc refuses)."""
    if address.split_snapshot(name)[1] is not None:
        raise CliError(f"a snapshot goes to another remote only with its "
                       f"instance: copy it to a new instance on its own "
                       f"remote first, then {verb} that")
    inst = client.get(f"/1.0/instances/{q(name)}")
    running = str(inst.get("status", "")).lower() in ACTIVE
    if running and not (args.stateless or args.live):
        raise CliError(f"instance {name!r} is running: stop it first, or "
                       f"{verb} it with --stateless (its files only) or "
                       f"--live")
    return running


def migrate(ctx: Context, p: Plan, *, instance_only: bool,
            live: bool) -> None:
    """Create ``p.target`` from ``p.source`` on another daemon: two
    operations, whichever daemon is reachable over HTTPS being dialed."""
    src, dst = ctx.client(p.source.remote), ctx.client(p.target.remote)
    _absent(dst, p.target)
    send = {"migration": True, "instance_only": instance_only,
            "live": live}
    path = f"/1.0/instances/{q(p.source.name)}"
    say(ctx, f"Transferring {p.source.name} to "
             f"{p.target.remote}:{p.target.name}")
    if p.mode == PULL:
        certificate = server_certificate(src)
        out = src.start("POST", path, json=send)
        with _cancelled_on_error(src, out):
            into = dst.start("POST", "/1.0/instances", json=_receive(
                p.target.name, {"mode": "pull", **_peer(src, out,
                                                        certificate)}))
        first, second = (dst, into), (src, out)
    else:
        certificate = server_certificate(dst)
        into = dst.start("POST", "/1.0/instances",
                         json=_receive(p.target.name, {"mode": "push"}))
        with _cancelled_on_error(dst, into):
            out = src.start("POST", path, json={
                **send, "target": _peer(dst, into, certificate)})
        first, second = (src, out), (dst, into)
    ticker = ctx.ticker(f"transfer {p.source.name}")
    try:
        with _cancelled_on_error(*second):
            first[0].wait(operation_path(first[1]), progress=ticker)
        second[0].wait(operation_path(second[1]), progress=ticker)
    except ApiError as err:
        if "403" in str(err):
            raise ApiError(f"{err} (remote {second[0].remote.name!r} must "
                           f"trust the server certificate of remote "
                           f"{first[0].remote.name!r}'s daemon: see "
                           f"{TRUST_HINT})", err.status) from None
        raise
    finally:
        ticker.close()


def _receive(name: str, source: dict) -> dict:
    return {"name": name, "type": "container",
            "source": {"type": "migration", **source}}


def _peer(client: Client, op_body: dict, certificate: str) -> dict:
    """How the other daemon reaches this operation: its URL, websocket
    secrets and the daemon's certificate to pin."""
    secrets = ((op_body.get("metadata") or {}).get("metadata")) or {}
    if not isinstance(secrets, dict) or not {"control", "fs"} <= set(
            secrets):
        raise CliError(f"{client.where} gave no migration secrets")
    return {"operation": client.base + operation_path(op_body),
            "secrets": {k: secrets[k] for k in ("control", "fs")},
            "certificate": certificate}


@contextmanager
def _cancelled_on_error(client: Client, op_body: dict) -> Iterator[None]:
    """Cancel an operation (best effort) when the block fails, so no
    half-started migration is left waiting."""
    try:
        yield
    except BaseException:
        with suppress(CliError):
            client.raw("DELETE", operation_path(op_body))
        raise


def _absent(client: Client, target: Target) -> None:
    try:
        client.get(f"/1.0/instances/{q(target.name)}")
    except NotFound:
        return
    raise CliError(f"instance {target.name!r} already exists on remote "
                   f"{target.remote!r}")


def server_certificate(client: Client) -> str:
    """The daemon's certificate (PEM) for the other daemon to pin; over
    HTTPS it must be the certificate pinned for the remote."""
    env = client.get("/1.0").get("environment") or {}
    pem = env.get("certificate")
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        raise CliError(f"{client.where} does not show its certificate "
                       f"(is this client trusted there?)")
    pinned = client.remote.fingerprint
    if pinned and transport.fingerprint_of(
            ssl.PEM_cert_to_DER_cert(pem)) != pinned:
        raise CliError(f"{client.where} shows a certificate other than the "
                       f"one pinned for remote {client.remote.name!r}")
    return pem


def _same_daemon(a: Client, b: Client) -> bool:
    """Two remotes naming one daemon (unix socket and HTTPS, say)."""
    return server_certificate(a) == server_certificate(b)
