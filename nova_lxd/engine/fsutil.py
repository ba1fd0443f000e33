"""Small file-system helpers shared by the image store and the records."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` so that readers see the old or the new file, never
    a torn one, even if the writer is killed half-way."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any, mode: int = 0o644) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True)
                        + "\n").encode(), mode)


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.load(f)


def remove_tree(path: Path) -> None:
    """Remove a directory tree (never following symlinks out of it)."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def make_dirs(path: Path, mode: int = 0o711) -> None:
    """Create ``path`` traversable by other ids: an unprivileged container's
    root must be able to walk down to its rootfs."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)



def write_in_rootfs(rootfs: Path, relpath: str, data: bytes, *,
                    uid: int = 0, gid: int = 0, mode: int = 0o644,
                    parents: tuple[int, int] | None = None,
                    append: bool = False) -> None:
    """Write a file inside a container's rootfs without following any
    symlink: a tenant's image may make ``etc`` a link to the host's /etc.
    ``parents``, a (uid, gid), creates missing directories (0755) with
    that owner. ``append`` adds to an existing file, keeping its owner and
    mode (as LXD does). Raises OSError (ELOOP/ENOTDIR) when the path is
    not a plain one, EINVAL when it names no regular file (a fifo would
    block the writer)."""
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise OSError(errno.EINVAL, f"bad path in rootfs: {relpath!r}")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(rootfs, flags)
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, flags, dir_fd=dir_fd)
            except FileNotFoundError:
                if parents is None:
                    raise
                os.mkdir(part, 0o755, dir_fd=dir_fd)
                next_fd = os.open(part, flags, dir_fd=dir_fd)
                os.fchown(next_fd, *parents)
                os.fchmod(next_fd, 0o755)
            os.close(dir_fd)
            dir_fd = next_fd
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd, created = -1, True
        if append:
            with contextlib.suppress(FileNotFoundError):
                fd, created = os.open(parts[-1], flags | os.O_APPEND,
                                      dir_fd=dir_fd), False
        if fd < 0:
            fd = os.open(parts[-1], flags | os.O_CREAT | os.O_TRUNC, mode,
                         dir_fd=dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            if created:
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
