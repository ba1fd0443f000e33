"""``nlxc console`` on a pty: attached, it shows what the container
writes to /dev/console, forwards a window resize and detaches on
Ctrl-a q; ``--show-log`` (and a stdin that is no terminal) prints the
log instead."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time


def _read_until(fd: int, marker: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # EIO: nlxc has exited
                break
    assert marker in seen, seen
    return seen


def test_console_attach_and_detach(nlxc, busybox_image):
    nlxc("launch", busybox_image, "con1")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nova_lxd.cli.main", "console", "con1"],
        env=nlxc.env, stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True)
    os.close(slave)
    try:
        _read_until(master, b"<ctrl>+a q")
        fcntl.ioctl(master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", 40, 120, 0, 0))
        proc.send_signal(signal.SIGWINCH)
        nlxc("exec", "con1", "--", "sh", "-c",
             "echo cli-console-out > /dev/console")
        seen = _read_until(master, b"cli-console-out")
        os.write(master, b"\x01q")
        assert proc.wait(30) == 0
        assert b"Traceback" not in seen
    finally:
        proc.kill()  # nothing once it has exited and been waited for
        proc.wait()
        os.close(master)
    # Detached; the log kept the line.
    assert "cli-console-out" in nlxc.out("console", "--show-log", "con1")
    assert "cli-console-out" in nlxc.out("console", "con1")  # no tty
    nlxc("delete", "--force", "con1")
