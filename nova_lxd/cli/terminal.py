"""The local terminal during ``exec -t`` and ``console``: raw mode (so
keys like Ctrl-C reach the container's tty, not this process) and the
window size the container's pty should have."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import termios
import tty
from collections.abc import Iterator


def is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def size() -> tuple[int, int]:
    """(width, height) of the controlling terminal; 80x24 otherwise."""
    cols, rows = shutil.get_terminal_size((80, 24))
    return cols, rows


@contextlib.contextmanager
def raw(fd: int | None = None) -> Iterator[None]:
    """Raw mode on ``fd`` (stdin) for the block; the old mode comes back
    whatever happens, so a failure never leaves a broken terminal."""
    fd = sys.stdin.fileno() if fd is None else fd
    if not is_tty(fd):
        yield
        return
    old = termios.tcgetattr(fd)
    try:
        # TCSANOW, not setraw's default TCSAFLUSH: keys typed before the
        # command started are kept and sent, not thrown away.
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
