"""Websocket plumbing for ``exec`` and ``console``.

LXD gives an operation one websocket per stream (``0`` stdin, ``1``
stdout, ``2`` stderr; only ``0`` both ways with a pty) plus ``control``
for window sizes and signals, each opened at
``/1.0/operations/<id>/websocket?secret=<secret>``. Each direction runs
in its own thread: blocking reads are simplest to reason about and the
streams are few.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable

import websocket

from nova_lxd.cli.client import Client
from nova_lxd.cli.errors import ApiError

CTRL_A = b"\x01"


def connect(client: Client, op_id: str, secret: str) -> websocket.WebSocket:
    """Open one of an operation's websockets (on the pinned transport)."""
    sock = client.websocket_socket()
    scheme = "wss" if client.base.startswith("https") else "ws"
    host = client.base.split("://", 1)[1]
    url = (f"{scheme}://{host}/1.0/operations/{op_id}/websocket"
           f"?secret={secret}")
    try:
        ws = websocket.create_connection(url, socket=sock,
                                         skip_utf8_validation=True)
    except (websocket.WebSocketException, OSError) as err:
        sock.close()
        raise ApiError(f"cannot open the operation's websocket: {err}")
    sock.settimeout(None)
    return ws


def copy_out(ws: websocket.WebSocket, fd: int) -> None:
    """Write every message of ``ws`` to ``fd`` until it closes."""
    while True:
        try:
            opcode, data = ws.recv_data()
        except (websocket.WebSocketException, OSError):
            return
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return
        if isinstance(data, str):
            data = data.encode()
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BrokenPipeError:
                return
            view = view[n:]


def copy_in(ws: websocket.WebSocket, fd: int,
            detach: Callable[[bytes], bool] | None = None,
            on_detach: Callable[[], None] | None = None) -> None:
    """Send what ``fd`` gives to ``ws``; at EOF, a close frame tells the
    server to close the process's stdin."""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if data and detach is not None and detach(data):
            if on_detach is not None:
                on_detach()
            return
        try:
            if not data:
                ws.send_close()
                return
            ws.send_binary(data)
        except (websocket.WebSocketException, OSError):
            return


class DetachKey:
    """Recognises Ctrl-a q (``console``'s way out, as in lxc)."""

    def __init__(self) -> None:
        self.pending = False

    def __call__(self, data: bytes) -> bool:
        for b in data:
            ch = bytes([b])
            if self.pending and ch == b"q":
                return True
            self.pending = ch == CTRL_A
        return False


class Control:
    """The control websocket: window size and signals."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws
        self.lock = threading.Lock()

    def _send(self, message: dict) -> None:
        with self.lock:
            try:
                self.ws.send(json.dumps(message))
            except (websocket.WebSocketException, OSError):
                pass

    def resize(self, width: int, height: int) -> None:
        self._send({"command": "window-resize",
                    "args": {"width": str(width), "height": str(height)}})

    def signal(self, signum: int) -> None:
        self._send({"command": "signal", "signal": int(signum)})

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except (websocket.WebSocketException, OSError):
            pass


def forward_signals(control: Control,
                    signums=(signal.SIGINT, signal.SIGTERM,
                             signal.SIGHUP)) -> dict:
    """Send these signals to the remote process instead of dying; the
    returned handlers put the old behaviour back."""
    old = {}
    for signum in signums:
        old[signum] = signal.signal(
            signum, lambda n, _f: control.signal(n))
    return old


def restore_signals(old: dict) -> None:
    for signum, handler in old.items():
        signal.signal(signum, handler)


def thread(target: Callable, *args) -> threading.Thread:
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t
