"""One attached console: an interactive exec session whose process is
the engine's console attachment (``lxc-console`` on our pty) instead of
a command in the container.

What differs from exec: the client's side ends it (closing the data or
control websocket detaches, as in LXD), a resize also tells the tool
(SIGWINCH) to pass the size on, signals are not forwarded, and the
operation has no ``return``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from nova_lxd.daemon import errors
from nova_lxd.daemon.exec_session import ExecSession
from nova_lxd.engine.api import Engine


class ConsoleSession(ExecSession):
    forwards_signals = False

    def __init__(self, engine: Engine, name: str, *, width: int,
                 height: int, secrets: dict[str, str]) -> None:
        super().__init__(engine, name, [], env={}, cwd="/", uid=0, gid=0,
                         interactive=True, width=width, height=height,
                         secrets=secrets)
        self.reaped = False
        self.detached = False
        self._stderr: int | None = None

    def _attach(self) -> tuple[int, list[int]]:
        master, slave = os.openpty()
        err_r, err_w = os.pipe()
        try:
            self._resize(master, *self.size)
            pid = self.engine.console_attach(self.name, stdin=slave,
                                             stdout=slave, stderr=err_w)
        except BaseException:
            os.close(master)
            os.close(err_r)
            raise
        finally:
            os.close(slave)
            os.close(err_w)
        self._stderr = err_r
        self.master = master  # kept for window-resize only
        return pid, [os.dup(master), os.dup(master)]

    async def _run(self) -> dict[str, Any]:
        try:
            result = await super()._run()
        finally:
            message = self._tool_error()
        if result["return"] != 0 and not (self.detached or self.cancelled):
            raise errors.Conflict(message or "The console attachment "
                                  "failed")
        return {}

    def _tool_error(self) -> str:
        """The last line the tool wrote to stderr ('' if none)."""
        if self._stderr is None:
            return ""
        fd, self._stderr = self._stderr, None
        try:
            os.set_blocking(fd, False)
            text = os.read(fd, 65536).decode(errors="replace")
        except OSError:
            text = ""
        finally:
            os.close(fd)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    async def _wait_pid(self, pid: int) -> int:
        status = await super()._wait_pid(pid)
        self.reaped = True
        return status

    async def _pump_in(self, fd: int) -> None:
        await super()._pump_in(fd)
        self._detach()  # the client closed its data websocket

    async def _control(self) -> None:
        await super()._control()
        if "control" in self.sockets:
            self._detach()  # the client closed its control websocket

    def _detach(self) -> None:
        if self.pid is not None and not self.reaped:
            self.detached = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def _resize(self, fd: int, width: int,  # type: ignore[override]
                height: int) -> None:
        """The pty's size, then SIGWINCH: the tool copies its terminal's
        size to the console when told."""
        ExecSession._resize(fd, width, height)
        if self.pid is not None and not self.reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGWINCH)
