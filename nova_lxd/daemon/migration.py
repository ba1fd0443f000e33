"""Moving an instance between two daemons, LXD's way: websockets.

One side sends (the engine's checked transfer stream, ``Engine.send``),
the other receives (``Engine.receive``); each side has two websockets,
``fs`` for the stream and ``control`` for the receiver's words: first
the tree formats it takes (``btrfs`` send streams between btrfs pools,
else ``tar``), last its verdict. Who
dials whom is independent of who sends: in *pull* mode the target dials
the source's operation, in *push* mode the source dials the target's.
A dialing daemon presents its own server certificate as its client
certificate (the other side must trust it) and pins the other side's
certificate, given as PEM with the request.

The receiver commits only a stream whose trailer checked out, then says
so on ``control``; the sender's operation succeeds only on that word, so
a client deletes a moved source only once the target holds the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import re
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web
from oslo_log import log as logging

from nova_lxd.daemon import errors
from nova_lxd.daemon.auth import tls
from nova_lxd.daemon.context import Context

LOG = logging.getLogger(__name__)

CHANNELS = ("control", "fs")
CONNECT_TIMEOUT = 120.0
"""How long an operation waits for the other daemon to connect."""
VERDICT_TIMEOUT = 600.0
"""How long a sender waits for the receiver to commit."""
HEARTBEAT = 15.0
HELLO_TIMEOUT = 30.0
"""How long a sender waits for the receiver to say what it takes."""
_OPERATION_URL = re.compile(r"/1\.0/operations/[0-9a-f-]{36}")

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class MigrationError(errors.ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 400)


class Accepting:
    """The websockets of a migration operation, accepted by secret (the
    operation's metadata holds the secrets, as LXD's does)."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.connected = asyncio.Event()
        self.finished = asyncio.Event()

    async def serve(self, request: web.Request,
                    secret: str) -> web.WebSocketResponse:
        channel = next((c for c, s in self.secrets.items()
                        if hmac.compare_digest(s, secret)
                        and c not in self.sockets), None)
        if channel is None:
            raise errors.Forbidden("Invalid or used websocket secret")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT,
                                   max_msg_size=2 * 1024 * 1024)
        await ws.prepare(request)
        self.sockets[channel] = ws
        if set(CHANNELS) <= set(self.sockets):
            self.connected.set()
        await self.finished.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)
        return ws

    async def channels(self) -> tuple[WebSocket, WebSocket]:
        """Both websockets, once connected; a cancel (``close``) or the
        timeout ends the wait at once."""
        waits = [asyncio.ensure_future(self.connected.wait()),
                 asyncio.ensure_future(self.finished.wait())]
        try:
            await asyncio.wait(waits, timeout=CONNECT_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self.finished.is_set():
            raise MigrationError("Cancelled before the other daemon "
                                 "connected")
        if not self.connected.is_set():
            raise MigrationError("The other daemon did not connect in "
                                 f"{CONNECT_TIMEOUT:.0f} s")
        return self.sockets["control"], self.sockets["fs"]

    def close(self) -> None:
        self.finished.set()


class Dialed:
    """The websockets of another daemon's migration operation, dialed."""

    def __init__(self, session: aiohttp.ClientSession,
                 sockets: dict[str, aiohttp.ClientWebSocketResponse]
                 ) -> None:
        self.session = session
        self.sockets = sockets

    @classmethod
    async def connect(cls, c: Context, peer: dict[str, Any]) -> Dialed:
        """``peer``: ``operation`` (its URL), ``secrets`` (control, fs)
        and ``certificate`` (the other daemon's PEM, pinned)."""
        url, secrets, pem = _peer(peer)
        context = _client_context(c, pem)
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))
        sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
        try:
            for channel in CHANNELS:
                sockets[channel] = await session.ws_connect(
                    f"{url}/websocket", params={"secret": secrets[channel]},
                    ssl=context, heartbeat=HEARTBEAT,
                    max_msg_size=2 * 1024 * 1024)
        except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            await session.close()
            raise MigrationError(f"Could not connect to {url}: "
                                 f"{_client_error(exc)}") from None
        except BaseException:
            await session.close()
            raise
        return cls(session, sockets)

    async def channels(self) -> tuple[WebSocket, WebSocket]:
        return self.sockets["control"], self.sockets["fs"]

    async def aclose(self) -> None:
        for ws in self.sockets.values():
            with contextlib.suppress(Exception):
                await ws.close()
        await self.session.close()


# -- the two roles ----------------------------------------------------------

async def send(c: Context, name: str, control: WebSocket, fs: WebSocket, *,
               snapshots: bool, live: bool = False,
               progress: Callable[[int], None] | None = None
               ) -> dict[str, Any]:
    """Stream ``name`` on ``fs`` in a format the receiver takes (its
    first word on ``control``); succeed once the receiver committed."""
    loop = asyncio.get_running_loop()
    out = _SocketWriter(fs, loop)
    try:
        formats = await _formats(control)
        summary = await c.call(c.engine.send, name, out,
                               snapshots=snapshots, progress=progress,
                               formats=formats, live=live)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await control.send_json({"success": False,
                                     "message": errors.message_of(exc)})
        raise
    moved = False
    try:
        verdict = await _verdict(control)
        moved = bool(verdict.get("success"))
        if not moved:
            raise MigrationError(
                f"The target refused {name}: "
                f"{verdict.get('message') or 'no reason'}")
    finally:
        if live:    # the dump goes, or the processes run on here
            await c.call(c.engine.live_finish, name, moved=moved)
    return {"sha256": summary.sha256, "bytes": summary.bytes,
            "trees": summary.trees}


async def receive(c: Context, name: str, control: WebSocket, fs: WebSocket,
                  progress: Callable[[int], None] | None = None
                  ) -> dict[str, Any]:
    """Say on ``control`` which formats this host takes, build ``name``
    from ``fs``, then say on ``control`` how it went."""
    await control.send_json({"accepts": await c.call(
        c.engine.transfer_formats)})
    loop = asyncio.get_running_loop()
    source = io.BufferedReader(_SocketReader(fs, loop),
                               buffer_size=1024 * 1024)
    try:
        record = await c.call(c.engine.receive, name, source,
                              progress=progress)
    except Exception as exc:
        said = await _sender_failure(control)
        with contextlib.suppress(Exception):
            await control.send_json({"success": False,
                                     "message": errors.message_of(exc)})
        if said:
            raise MigrationError(f"The source failed: {said}") from exc
        raise
    await control.send_json({"success": True})
    return {"name": record.name}


async def _formats(control: WebSocket) -> tuple[str, ...]:
    """The tree formats the receiver takes (tar if it does not say)."""
    try:
        msg = await asyncio.wait_for(control.receive(), HELLO_TIMEOUT)
    except TimeoutError:
        return ("tar",)
    if msg.type == WSMsgType.TEXT:
        with contextlib.suppress(ValueError):
            value = msg.json()
            accepts = value.get("accepts") if isinstance(value, dict) \
                else None
            if isinstance(accepts, list) and all(
                    isinstance(f, str) for f in accepts):
                return tuple(accepts)
    raise MigrationError("The target closed the connection before it "
                         "started; the source is unchanged")


async def _verdict(control: WebSocket) -> dict[str, Any]:
    try:
        msg = await asyncio.wait_for(control.receive(), VERDICT_TIMEOUT)
    except TimeoutError:
        raise MigrationError("The target did not confirm in "
                             f"{VERDICT_TIMEOUT:.0f} s") from None
    if msg.type == WSMsgType.TEXT:
        with contextlib.suppress(ValueError):
            value = msg.json()
            if isinstance(value, dict):
                return value
    raise MigrationError("The connection to the target was lost before it "
                         "confirmed; the source is unchanged")


async def _sender_failure(control: WebSocket) -> str | None:
    """What the sender said went wrong, if it said so already."""
    with contextlib.suppress(Exception):
        msg = await asyncio.wait_for(control.receive(), 1.0)
        if msg.type == WSMsgType.TEXT:
            value = msg.json()
            if isinstance(value, dict) and value.get("success") is False:
                return str(value.get("message") or "no reason")
    return None


class _SocketWriter(io.RawIOBase):
    """A file for the engine's worker thread: each write is one binary
    message, sent by the event loop (the thread waits: backpressure)."""

    def __init__(self, ws: WebSocket, loop: asyncio.AbstractEventLoop
                 ) -> None:
        self._ws, self._loop = ws, loop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._ws.closed:
            raise ConnectionError("the other daemon closed the connection")
        asyncio.run_coroutine_threadsafe(
            self._ws.send_bytes(bytes(data)), self._loop).result()
        return len(data)


class _SocketReader(io.RawIOBase):
    """A file for the engine's worker thread reading binary messages;
    end of file when the socket closes (the stream's own trailer says
    whether everything came)."""

    def __init__(self, ws: WebSocket, loop: asyncio.AbstractEventLoop
                 ) -> None:
        self._ws, self._loop = ws, loop
        self._buffer = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer and not self._eof:
            msg = asyncio.run_coroutine_threadsafe(
                self._ws.receive(), self._loop).result()
            if msg.type == WSMsgType.BINARY:
                self._buffer = memoryview(msg.data)
            elif msg.type != WSMsgType.TEXT:
                self._eof = True
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


# -- peers ---------------------------------------------------------------

def _peer(peer: Any) -> tuple[str, dict[str, str], str]:
    if not isinstance(peer, dict):
        raise errors.BadRequest("The migration peer is an object with "
                                "operation, secrets and certificate")
    url, secrets, pem = (peer.get("operation"), peer.get("secrets"),
                         peer.get("certificate"))
    if not isinstance(url, str):
        raise errors.BadRequest("operation is the other daemon's operation "
                                "URL (https://host:port/1.0/operations/id)")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or \
            not _OPERATION_URL.fullmatch(parts.path) or parts.query:
        raise errors.BadRequest(f"Invalid operation URL {url!r}: expected "
                                "https://host:port/1.0/operations/<id>")
    if not isinstance(secrets, dict) or not all(
            isinstance(secrets.get(ch), str) for ch in CHANNELS):
        raise errors.BadRequest("secrets needs the control and fs secrets")
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        raise errors.BadRequest("certificate is the other daemon's "
                                "certificate (PEM), pinned for the move")
    return url, {ch: secrets[ch] for ch in CHANNELS}, pem


def _client_context(c: Context, pem: str) -> ssl.SSLContext:
    """TLS 1.3 to the pinned peer, with our certificate as the client's."""
    cert, key = tls.ensure_server_certificate(c.settings.state_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # pinned: the certificate is the name
    try:
        context.load_verify_locations(cadata=pem)
    except ssl.SSLError as exc:
        raise errors.BadRequest(f"Invalid peer certificate: {exc}") from None
    context.load_cert_chain(cert, key)
    return context


def _client_error(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        if exc.status == 403:
            return ("refused (403): this daemon's certificate is not in "
                    "its trust store, or the secret is wrong")
        return f"refused ({exc.status} {exc.message})"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError) or \
            isinstance(exc, ssl.SSLError):
        return f"its certificate is not the one given ({exc})"
    return str(exc) or type(exc).__name__
