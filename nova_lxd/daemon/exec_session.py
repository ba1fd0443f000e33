"""One ``exec`` with websockets: the command attached to the container
with pipes (or a pty when interactive), its fds pumped to and from the
client's websockets by the event loop, its exit code the operation's
``return``.

The engine's ``execute`` collects output until the command ends; here
output must stream, so the command is started with ``Engine.attach`` on
our pipes or pty and watched with a pidfd: no thread is held for the
command's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import json
import os
import signal
import struct
import termios
from typing import Any

from aiohttp import WSMsgType, web
from oslo_log import log as logging

from nova_lxd.daemon import errors
from nova_lxd.engine.api import Engine

LOG = logging.getLogger(__name__)
CONNECT_TIMEOUT = 30.0
OUTPUT_GRACE = 2.0
CLOSE_TIMEOUT = 5.0
CHUNK = 65536


class ExecSession:
    forwards_signals = True
    """Whether the control socket's ``signal`` reaches the process."""

    def __init__(self, engine: Engine, name: str, argv: list[str], *,
                 env: dict[str, str], cwd: str, uid: int, gid: int,
                 interactive: bool, width: int, height: int,
                 secrets: dict[str, str]) -> None:
        self.engine, self.name, self.argv = engine, name, argv
        self.env, self.cwd, self.uid, self.gid = env, cwd, uid, gid
        self.interactive = interactive
        self.size = (width, height)
        self.secrets = secrets
        # LXD clients need not connect the control socket (pylxd does not).
        self.required = set(secrets) - {"control"}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.all_connected = asyncio.Event()
        self.finished = asyncio.Event()
        self.pid: int | None = None
        self.master: int | None = None
        self._open_fds: set[int] = set()
        self.cancelled = False

    # -- websockets --------------------------------------------------------

    def fd_for(self, secret: str) -> str:
        for fd, expected in self.secrets.items():
            if hmac.compare_digest(expected, secret) and \
                    fd not in self.sockets:
                return fd
        raise errors.Forbidden("Invalid or used websocket secret")

    async def serve(self, request: web.Request,
                    secret: str) -> web.WebSocketResponse:
        """Hold one client websocket until the command is done."""
        fd = self.fd_for(secret)
        ws = web.WebSocketResponse(timeout=2.0)
        await ws.prepare(request)
        self.sockets[fd] = ws
        if self.required <= set(self.sockets):
            self.all_connected.set()
        await self.finished.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT)
        return ws

    # -- the command -------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self.all_connected.wait(),
                                   CONNECT_TIMEOUT)
        except TimeoutError:
            raise errors.BadRequest("The client did not connect its "
                                    "websockets in time") from None
        if self.cancelled:
            self.finished.set()
            raise errors.ApiError("Operation cancelled before the command "
                                  "started", 400)
        try:
            return await self._run()
        finally:
            self.finished.set()

    def cancel(self) -> None:
        """Kill the command, or never start it if it has not started."""
        self.cancelled = True
        self.all_connected.set()
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def _attach(self) -> tuple[int, list[int]]:
        """Start the command; its pid and our ends (stdin, stdout[,
        stderr]) of its fds."""
        def start(stdin: int, stdout: int, stderr: int) -> int:
            return self.engine.attach(
                self.name, self.argv, env=self.env, cwd=self.cwd,
                uid=self.uid, gid=self.gid, stdin=stdin, stdout=stdout,
                stderr=stderr)

        if self.interactive:
            master, slave = os.openpty()
            self._resize(master, *self.size)
            try:
                pid = start(slave, slave, slave)
            finally:
                os.close(slave)
            self.master = master  # kept for window-resize only
            self._resize(master, *self.size)  # a resize that came meanwhile
            return pid, [os.dup(master), os.dup(master)]
        pipes = [os.pipe(), os.pipe(), os.pipe()]
        try:
            pid = start(pipes[0][0], pipes[1][1], pipes[2][1])
        except BaseException:
            for r, w in pipes:
                os.close(r)
                os.close(w)
            raise
        for fd in (pipes[0][0], pipes[1][1], pipes[2][1]):
            os.close(fd)
        return pid, [pipes[0][1], pipes[1][0], pipes[2][0]]

    async def _run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        self.pid, fds = await loop.run_in_executor(None, self._attach)
        # Each pump closes the fd it was given; what a pump cancelled
        # before it ran did not take is closed here, once.
        self._open_fds = set(fds)
        outputs = ["0"] if self.interactive else ["1", "2"]
        pumps = [asyncio.ensure_future(self._pump_out(fd, key))
                 for fd, key in zip(fds[1:], outputs, strict=True)]
        control = asyncio.ensure_future(self._control())
        feeder = asyncio.ensure_future(self._pump_in(fds[0]))
        try:
            status = await self._wait_pid(self.pid)
            await asyncio.wait(pumps, timeout=OUTPUT_GRACE)
        finally:
            for task in (*pumps, feeder, control):
                task.cancel()
            await asyncio.gather(*pumps, feeder, control,
                                 return_exceptions=True)
            for fd in self._open_fds:
                os.close(fd)
            if self.master is not None:
                os.close(self.master)
        return {"return": os.waitstatus_to_exitcode(status)}

    async def _wait_pid(self, pid: int) -> int:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        ready = asyncio.Event()
        loop.add_reader(pidfd, ready.set)
        try:
            await ready.wait()
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        return os.waitpid(pid, 0)[1]

    async def _pump_out(self, fd: int, key: str) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=CHUNK)
        self._open_fds.discard(fd)
        pipe = os.fdopen(fd, "rb", 0)
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe)
        except BaseException:
            pipe.close()
            raise
        ws = self.sockets[key]
        try:
            while True:
                try:
                    chunk = await reader.read(CHUNK)
                except OSError:  # EIO: the pty's last user is gone
                    break
                if not chunk:
                    break
                await ws.send_bytes(chunk)
        finally:
            transport.close()

    async def _pump_in(self, fd: int) -> None:
        ws = self.sockets["0"]
        loop = asyncio.get_running_loop()
        self._open_fds.discard(fd)
        pipe = os.fdopen(fd, "wb", 0)
        try:
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, pipe)
        except BaseException:
            pipe.close()
            raise
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        try:
            while True:
                msg = await ws.receive()
                if msg.type == WSMsgType.BINARY:
                    data = msg.data
                elif msg.type == WSMsgType.TEXT and msg.data:
                    data = msg.data.encode()
                else:
                    break  # an empty text message, or closed: EOF
                writer.write(data)
                await writer.drain()
        except OSError:
            pass  # the command closed its stdin
        finally:
            transport.close()

    async def _control(self) -> None:
        ws = self.sockets.get("control")
        if ws is None:
            return
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                command = json.loads(msg.data)
                args = command.get("args") or {}
                if command.get("command") == "window-resize":
                    # Kept for the pty when the command is not started
                    # yet (clients resize right after connecting).
                    self.size = (int(args["width"]), int(args["height"]))
                    if self.master is not None:
                        self._resize(self.master, *self.size)
                elif command.get("command") == "signal" and self.pid \
                        and self.forwards_signals:
                    os.kill(self.pid, int(command["signal"]))
            except (ValueError, KeyError, TypeError, AttributeError,
                    OSError) as exc:
                LOG.debug("Ignored control message %r: %s", msg.data, exc)

    @staticmethod
    def _resize(fd: int, width: int, height: int) -> None:
        if width > 0 and height > 0:
            fcntl.ioctl(fd, termios.TIOCSWINSZ,
                        struct.pack("HHHH", height, width, 0, 0))
