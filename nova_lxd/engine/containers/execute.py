"""Run a command inside a running container and collect its result.

The command gets a clean environment (nothing of the host leaks in), its
output is read by threads while it runs (no pipe dead-lock) and bounded
in memory, and a timeout kills it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from typing import Any

from nova_lxd.engine import errors, liblxc

DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
MAX_OUTPUT = 16 * 1024 * 1024
OUTPUT_GRACE = 2.0


@dataclasses.dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def start(name: str, ct: Any, argv: list[str], *,
          env: dict[str, str] | None, cwd: str, uid: int, gid: int,
          stdin: int, stdout: int, stderr: int) -> int:
    """Start ``argv`` in the running container on the caller's fds, with
    the default environment under ``env``; the pid to wait for."""
    if not argv or not all(isinstance(a, str) for a in argv):
        raise errors.InvalidInput(
            "A command is a non-empty list of strings.")
    status = liblxc.state(ct)
    if status != liblxc.RUNNING:
        raise errors.InvalidState(action="run a command in", name=name,
                                  status=status.lower())
    return liblxc.attach(ct, argv, env={**DEFAULT_ENV, **(env or {})},
                         cwd=cwd, uid=uid, gid=gid, stdin=stdin,
                         stdout=stdout, stderr=stderr)


def run(name: str, ct: Any, argv: list[str], *,
        env: dict[str, str] | None = None, cwd: str = "/",
        uid: int = 0, gid: int = 0, stdin: bytes | None = None,
        timeout: float | None = None) -> ExecResult:
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = start(name, ct, argv, env=env, cwd=cwd, uid=uid, gid=gid,
                    stdin=in_r, stdout=out_w, stderr=err_w)
    except BaseException:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    out, err = _Collector(out_r), _Collector(err_r)
    feeder = threading.Thread(target=_feed, args=(in_w, stdin or b""),
                              daemon=True)
    for t in (out, err, feeder):
        t.start()
    status_code = _wait(pid, timeout)
    # A background child of the command may hold the pipes open: give the
    # readers a moment, then return what was read.
    out.join(timeout=OUTPUT_GRACE)
    err.join(timeout=OUTPUT_GRACE)
    feeder.join(timeout=1)
    if status_code is None:
        raise errors.CommandTimeout(command=argv[0], name=name,
                                    timeout=timeout)
    return ExecResult(exit_code=os.waitstatus_to_exitcode(status_code),
                      stdout=out.data, stderr=err.data,
                      truncated=out.truncated or err.truncated)


def _wait(pid: int, timeout: float | None) -> int | None:
    if timeout is None:
        return os.waitpid(pid, 0)[1]
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status_code = os.waitpid(pid, os.WNOHANG)
        if done:
            return status_code
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _feed(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BrokenPipeError:
        pass  # the command did not read all of its input
    finally:
        os.close(fd)


class _Collector(threading.Thread):
    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def run(self) -> None:
        try:
            while chunk := os.read(self.fd, 65536):
                if self.size + len(chunk) > MAX_OUTPUT:
                    chunk = chunk[:MAX_OUTPUT - self.size]
                    self.truncated = True
                self.chunks.append(chunk)
                self.size += len(chunk)
        finally:
            os.close(self.fd)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)
