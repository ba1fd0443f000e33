"""Bringing a file into the image store: hashed as it is read, once.

``copy_hashed`` copies a file someone else owns (a tenant's upload may
change under us, so the copy is what gets scanned and kept);
``hash_in_place`` reads a file the engine made itself in the store's
scratch space, which is then renamed in: no copy of a 20 GiB tarball.
Both stop at ``limit`` bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

from nova_lxd.engine import errors

_CHUNK = 1024 * 1024


def copy_hashed(source: Path, dest: Path, limit: int, *,
                hash_prefix: bytes = b"") -> tuple[str, int]:
    """Copy ``source`` to the new file ``dest``; its sha256 (of
    ``hash_prefix`` then the file, which alone is copied) and size."""
    digest = hashlib.sha256(hash_prefix)
    size = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with _open_regular(source) as src:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                     | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as out:
            while n := src.readinto(buf):
                size += n
                _check_size(source, size, limit)
                digest.update(view[:n])
                out.write(view[:n])
            out.flush()
            os.fsync(out.fileno())
    return digest.hexdigest(), size


def hash_in_place(path: Path, limit: int) -> tuple[str, int]:
    """The sha256 and size of ``path``, flushed to disk."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with _open_regular(path, os.O_NOFOLLOW) as f:
        while n := f.readinto(buf):
            size += n
            _check_size(path, size, limit)
            digest.update(view[:n])
        os.fsync(f.fileno())
    return digest.hexdigest(), size


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_regular(path: Path, flags: int = 0) -> io.BufferedReader:
    # O_NONBLOCK: a fifo must not hang us before fstat says no.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise errors.InvalidImage(source=str(path),
                                  reason="not a regular file")
    return open(fd, "rb")


def _check_size(source: Path, size: int, limit: int) -> None:
    if size > limit:
        raise errors.ImageTooLarge(
            source=str(source), limit=f"{limit} bytes",
            reason="the file is larger than any image within the unpacked "
            "size limit")
