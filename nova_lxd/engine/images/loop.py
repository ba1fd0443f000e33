"""Loop devices over a slice of an image file, for the mount helper.

Read-only and auto-clearing: the device detaches itself when its last
user (the mount, the helper's fd) goes, so a dead helper leaves nothing
attached. ``detach_stale_loops`` is the belt and braces the engine runs at
start-up.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from pathlib import Path

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_LOOP_SET_FD, _LOOP_CLR_FD = 0x4C00, 0x4C01
_LOOP_SET_STATUS64, _LOOP_CONFIGURE = 0x4C04, 0x4C0A
_LOOP_CTL_GET_FREE = 0x4C82
_LO_FLAGS_READ_ONLY, _LO_FLAGS_AUTOCLEAR = 1, 4
_LOOP_INFO64 = "=QQQQQIIII64s64s32sQQ"


def attach_loop(backing: Path, offset: int, size: int) -> tuple[int, str]:
    """A read-only, auto-clearing loop device over ``size`` bytes of
    ``backing`` at ``offset``; returns its open fd and its path. Closing
    the fd (or dying) detaches it unless something mounted it."""
    file_fd = os.open(backing, os.O_RDONLY | os.O_CLOEXEC)
    try:
        name = os.fsencode(os.path.abspath(backing))[:63]
        info = struct.pack(_LOOP_INFO64[1:], 0, 0, 0, offset, size, 0, 0, 0,
                           _LO_FLAGS_READ_ONLY | _LO_FLAGS_AUTOCLEAR, name,
                           b"", b"", 0, 0)
        config = struct.pack("=II", file_fd, 0) + info + bytes(64)
        control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(64):
                number = fcntl.ioctl(control, _LOOP_CTL_GET_FREE)
                device = f"/dev/loop{number}"
                loop_fd = _open_loop(device)
                try:
                    _configure(loop_fd, file_fd, config, info)
                    return loop_fd, device
                except OSError as exc:
                    os.close(loop_fd)
                    if exc.errno != errno.EBUSY:
                        raise
                    # Another process took it between GET_FREE and here.
        finally:
            os.close(control)
        raise OSError(errno.EBUSY, "no free loop device")
    finally:
        os.close(file_fd)


def _open_loop(device: str) -> int:
    try:
        return os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        return os.open(device, os.O_RDONLY | os.O_CLOEXEC)


def _configure(loop_fd: int, file_fd: int, config: bytes,
               info: bytes) -> None:
    try:
        fcntl.ioctl(loop_fd, _LOOP_CONFIGURE, config)
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTTY):
            raise
    # Kernels before 5.8: the two-step way (autoclear set in the second).
    fcntl.ioctl(loop_fd, _LOOP_SET_FD, file_fd)
    try:
        fcntl.ioctl(loop_fd, _LOOP_SET_STATUS64, info)
    except OSError:
        with contextlib.suppress(OSError):
            fcntl.ioctl(loop_fd, _LOOP_CLR_FD, 0)
        raise


def loops_backed_by(backing_dir: Path) -> list[tuple[str, str]]:
    """(device, backing file) of loop devices whose file is under
    ``backing_dir``."""
    base = os.path.realpath(backing_dir)
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir("/sys/block")):
            if not entry.startswith("loop"):
                continue
            try:
                with open(f"/sys/block/{entry}/loop/backing_file") as f:
                    backing = f.read().strip()
            except OSError:
                continue
            backing = backing.removesuffix(" (deleted)")
            if backing == base or backing.startswith(base.rstrip("/") + "/"):
                found.append((f"/dev/{entry}", backing))
    return found


def detach_stale_loops(backing_dir: Path) -> list[str]:
    """Detach loop devices backed by files under ``backing_dir`` (after a
    crash, should the kernel not have done it). A device still mounted
    somewhere is only marked to detach itself on its last close."""
    detached = []
    for device, backing in loops_backed_by(backing_dir):
        try:
            fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.ioctl(fd, _LOOP_CLR_FD, 0)
            LOG.warning("Detached %s, a loop device left on %s", device,
                        backing)
            detached.append(device)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # already detached
                LOG.warning("Could not detach %s (%s): %s", device, backing,
                            exc)
        finally:
            os.close(fd)
    return detached
