"""Which signal makes a rootfs's init halt cleanly.

liblxc sends ``lxc.signal.halt`` to init on a clean shutdown. The default
(SIGPWR) suits sysvinit; systemd wants SIGRTMIN+3 and busybox init ignores
SIGPWR and halts on SIGUSR1, so a busybox container would otherwise wait
for the whole timeout before being killed.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT = "SIGPWR"
_BY_INIT = (
    ("busybox", "SIGUSR1"),
    ("systemd", "SIGRTMIN+3"),
)


def halt_signal(rootfs: Path) -> str:
    target = _init_target(rootfs)
    if target is None:
        return DEFAULT
    for marker, signal in _BY_INIT:
        if marker in target:
            return signal
    return DEFAULT


def _init_target(rootfs: Path) -> str | None:
    """Resolve /sbin/init inside ``rootfs`` (symlinks are relative to the
    rootfs, never to the host), a few hops at most."""
    path = "/sbin/init"
    for hop in range(8):
        host_path = rootfs / path.lstrip("/")
        try:
            link = os.readlink(host_path)
        except FileNotFoundError:
            return None if hop == 0 else path
        except OSError:
            return path  # a regular file: its name is all we know
        path = link if link.startswith("/") else os.path.normpath(
            os.path.join(os.path.dirname(path), link))
    return path
