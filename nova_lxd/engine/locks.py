"""Cross-process locks on files, so that engines in several processes can
share one root: operations on one container are serialised, and the id-map
and alias tables are updated by one writer at a time.

``flock`` locks belong to the open file, so they also serialise threads of
one process that each open the lock, and the kernel drops them when a
process dies (even by SIGKILL): a crashed operation never leaves a stale
lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from nova_lxd.engine import errors

_POLL = 0.01


class FileLock:
    """An exclusive ``flock`` on ``path``; usable as a context manager."""

    def __init__(self, path: Path, timeout: float | None = None,
                 what: str | None = None) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.what = what or self.path.stem
        self._fd: int | None = None
        self.unlink_on_release = False

    def acquire(self, blocking: bool = True) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = None if self.timeout is None else (
            time.monotonic() + self.timeout)
        delay = _POLL
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if not self._is_current(fd):
                    # The holder removed the lock file while we waited:
                    # lock the new file instead.
                    os.close(fd)
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT
                                 | os.O_CLOEXEC, 0o600)
                    continue
                self._fd = fd
                return True
            except BlockingIOError:
                if not blocking:
                    os.close(fd)
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    raise errors.Busy(name=self.what, timeout=self.timeout)
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _is_current(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        here = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)

    def release(self, unlink: bool = False) -> None:
        """Release; with ``unlink`` also remove the lock file (for a
        container that no longer exists), safely for waiters."""
        if self._fd is not None:
            if unlink:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release(unlink=self.unlink_on_release)


@contextlib.contextmanager
def locked(path: Path, timeout: float | None = None,
           what: str | None = None) -> Iterator[FileLock]:
    lock = FileLock(path, timeout=timeout, what=what)
    with lock:
        yield lock
