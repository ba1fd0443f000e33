"""``exec`` and ``console``: a process's streams over websockets.

``exec`` is interactive (one pty stream, raw local terminal, window
size, Ctrl-C goes to the container) when stdin and stdout are terminals
or with ``-t``; otherwise stdout and stderr stay separate and local
signals are forwarded. Either way ``nlxc`` exits with the command's exit
code, read from the finished operation's ``metadata.return``.
"""

from __future__ import annotations

import os
import signal
import sys

from nova_lxd.cli import streams, terminal
from nova_lxd.cli.client import Client, operation_path, q
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import ApiError, CliError


def register(sub) -> None:
    p = sub.add_parser("exec", help="run a command in an instance",
                       usage="nlxc exec [-t|-T] [--env K=V] "
                             "[REMOTE:]NAME -- COMMAND...")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-t", "--force-interactive", action="store_true",
                      help="allocate a pty even without a local terminal")
    mode.add_argument("-T", "--force-noninteractive", action="store_true",
                      help="never allocate a pty")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="environment variable (repeatable)")
    p.add_argument("--cwd", help="working directory in the instance")
    p.add_argument("--user", type=int, help="uid to run as")
    p.add_argument("--group", type=int, help="gid to run as")
    p.add_argument("command", nargs="...", metavar="COMMAND")
    p.set_defaults(func=exec_command)

    p = sub.add_parser("console", help="attach to the console, or show "
                                       "its log")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    p.add_argument("--show-log", action="store_true",
                   help="print the console log and exit")
    p.add_argument("--force", action="store_true",
                   help="take the console over from another client")
    p.set_defaults(func=console)


def exec_command(ctx: Context, args) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("no command given (nlxc exec NAME -- COMMAND...)")
    client, name = ctx.instance(args.name)
    interactive = args.force_interactive or (
        not args.force_noninteractive and terminal.is_tty(0)
        and terminal.is_tty(1))
    env = {}
    for pair in args.env:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"{pair!r}: expected K=V")
        env[key] = value
    if interactive:
        env.setdefault("TERM", os.environ.get("TERM", "xterm"))
    width, height = terminal.size()
    body = {"command": command, "environment": env,
            "interactive": interactive, "wait-for-websocket": True,
            "record-output": False, "width": width, "height": height}
    if args.cwd:
        body["cwd"] = args.cwd
    if args.user is not None:
        body["user"] = args.user
    if args.group is not None:
        body["group"] = args.group
    op = client.start("POST", f"/1.0/instances/{q(name)}/exec", json=body)
    return attach(client, op, interactive)


def _fds(op_body: dict) -> tuple[str, dict]:
    meta = op_body.get("metadata") or {}
    fds = (meta.get("metadata") or {}).get("fds") or {}
    if not meta.get("id") or not fds:
        raise CliError("the server gave no websockets for the operation")
    return meta["id"], fds


def attach(client: Client, op_body: dict, interactive: bool) -> int:
    op_id, fds = _fds(op_body)
    control = streams.Control(streams.connect(client, op_id,
                                              fds["control"]))
    sockets = {k: streams.connect(client, op_id, v)
               for k, v in sorted(fds.items()) if k != "control"}
    try:
        if interactive:
            _interactive(sockets["0"], control)
        else:
            _separate(sockets, control)
        op = client.wait(operation_path(op_body), check=False)
    finally:
        control.close()
        for ws in sockets.values():
            try:
                ws.close(timeout=1)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
    if op.get("status_code") != 200 and "return" not in (
            op.get("metadata") or {}):
        raise CliError(op.get("err") or "the command failed")
    return int((op.get("metadata") or {}).get("return", 0)) & 0xFF


def _interactive(ws, control: streams.Control, detach=None,
                 on_detach=None) -> None:
    """Raw terminal, window size forwarded; ``detach`` recognises the
    keys that end it (``console``'s Ctrl-a q), then ``on_detach`` runs."""
    def resize(*_):
        control.resize(*terminal.size())
    old = signal.signal(signal.SIGWINCH, resize)
    try:
        with terminal.raw(0):
            streams.thread(streams.copy_in, ws, 0, detach, on_detach)
            streams.copy_out(ws, 1)
    finally:
        signal.signal(signal.SIGWINCH, old)


def _separate(sockets: dict, control: streams.Control) -> None:
    old = streams.forward_signals(control)
    try:
        if "0" in sockets:
            streams.thread(streams.copy_in, sockets["0"], 0)
        outs = [streams.thread(streams.copy_out, sockets[k], int(k))
                for k in ("1", "2") if k in sockets]
        for t in outs:
            while t.is_alive():
                t.join(0.2)
    finally:
        streams.restore_signals(old)
        sys.stdout.flush()


def _show_log(client: Client, path: str) -> int:
    sys.stdout.buffer.write(client.raw("GET", path).content)
    sys.stdout.flush()
    return 0


def console(ctx: Context, args) -> int:
    client, name = ctx.instance(args.name)
    path = f"/1.0/instances/{q(name)}/console"
    if args.show_log or not (terminal.is_tty(0) and terminal.is_tty(1)):
        return _show_log(client, path)
    width, height = terminal.size()
    try:
        op = client.start("POST", path, json={"width": width,
                                              "height": height,
                                              "type": "console",
                                              "force": args.force})
    except ApiError as err:
        if err.status not in (404, 405, 501):
            raise
        print(f"{client.where} cannot attach to consoles; its console "
              f"log follows", file=sys.stderr)
        return _show_log(client, path)
    op_id, fds = _fds(op)
    control = streams.Control(streams.connect(client, op_id,
                                              fds["control"]))
    ws = streams.connect(client, op_id, fds["0"])
    print("To detach from the console, press: <ctrl>+a q\r", flush=True)

    def detach():
        control.close()
        ws.abort()
    try:
        _interactive(ws, control, streams.DetachKey(), detach)
    finally:
        control.close()
    return 0
