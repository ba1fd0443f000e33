"""Files put into a container's rootfs by the host (seeds, pushes) and
read back from it (pulls).

Paths are resolved inside the rootfs without following symlinks (see
``fsutil.write_in_rootfs``), and owners are container ids: when the
rootfs is chown-shifted rather than idmap-mounted, they are moved into
the container's host range here.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nova_lxd.engine import errors, fsutil
from nova_lxd.engine.containers.records import ContainerRecord

MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class RootfsFile:
    path: str
    """Absolute path inside the container."""
    data: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    """Owner as the container sees it."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RootfsFile:
        return cls(**data)

    def validate(self) -> RootfsFile:
        parts = self.path.split("/")
        if not self.path.startswith("/") or ".." in parts or "\0" in \
                self.path or self.path.rstrip("/") == "":
            raise errors.InvalidConfig(
                key=f"file {self.path!r}",
                reason="paths are absolute, without '..'")
        if not isinstance(self.data, bytes) or \
                len(self.data) > MAX_FILE_BYTES:
            raise errors.InvalidConfig(
                key=f"file {self.path}",
                reason=f"contents are bytes, {MAX_FILE_BYTES} at most")
        if not 0 <= self.mode <= 0o7777:
            raise errors.InvalidConfig(key=f"file {self.path}",
                                       reason=f"bad mode {self.mode:o}")
        return self


def host_ids(record: ContainerRecord, uid: int, gid: int) -> tuple[int, int]:
    """Owner on disk of a file the container sees as ``uid:gid``."""
    mapping = record.idmap
    if mapping is None or record.idmapped_mount:
        return uid, gid
    try:
        return mapping.host_uid(uid), mapping.host_gid(gid)
    except errors.InvalidInput as exc:
        raise errors.InvalidConfig(key="owner", reason=str(exc)) from exc


def write_files(record: ContainerRecord, rootfs: Path,
                files: Iterable[RootfsFile]) -> None:
    """Write each file, creating missing parent directories owned by the
    container's root. A path through a symlink is refused."""
    root_ids = host_ids(record, 0, 0)
    for item in files:
        item.validate()
        uid, gid = host_ids(record, item.uid, item.gid)
        try:
            fsutil.write_in_rootfs(rootfs, item.path, item.data, uid=uid,
                                   gid=gid, mode=item.mode,
                                   parents=root_ids)
        except OSError as exc:
            raise errors.OperationFailed(
                action="write a file into", name=record.name,
                reason=f"{item.path}: {exc.strerror or exc} (a part of the"
                       f" path is a symlink or not a directory)") from exc


@dataclasses.dataclass(frozen=True)
class RootfsEntry:
    """What is at a path of a rootfs, read without following symlinks."""

    kind: str
    """"file", "directory" or "symlink"."""
    mode: int
    uid: int
    gid: int
    """Owner as the container sees it."""
    data: bytes = b""
    """A file's contents or a symlink's target."""
    entries: tuple[str, ...] = ()
    """A directory's names."""


def container_ids(record: ContainerRecord, uid: int,
                  gid: int) -> tuple[int, int]:
    """The owner the container sees of a file owned by host ``uid:gid``
    (65534, nobody, for ids outside its map)."""
    mapping = record.idmap
    if mapping is None or record.idmapped_mount:
        return uid, gid

    def back(host_id: int, base: int) -> int:
        cid = host_id - base
        return cid if 0 <= cid < mapping.size else 65534

    return back(uid, mapping.uid_base), back(gid, mapping.gid_base)


def read_entry(record: ContainerRecord, rootfs: Path, path: str, *,
               max_bytes: int = MAX_FILE_BYTES) -> RootfsEntry:
    """Read a file, a directory listing or a symlink's target inside the
    rootfs, walking each component with O_NOFOLLOW from the rootfs' own
    descriptor: no symlink (an absolute one to the host's /etc, a
    relative one climbing out) and no '..' leads outside. Devices, fifos
    and sockets are refused."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not path.startswith("/") or ".." in parts or "\0" in path:
        raise errors.InvalidInput(f"Invalid path {path!r}: paths are "
                                  f"absolute, without '..'")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(rootfs, flags)
    try:
        try:
            for part in parts[:-1]:
                next_fd = os.open(part, flags, dir_fd=dir_fd)
                os.close(dir_fd)
                dir_fd = next_fd
            return _read_last(record, dir_fd, parts[-1] if parts else ".",
                              max_bytes)
        except FileNotFoundError as exc:
            raise errors.NotFound(f"{path} not found in container "
                                  f"{record.name}") from exc
        except OSError as exc:
            raise errors.InvalidInput(
                f"Cannot read {path} in container {record.name}: "
                f"{exc.strerror or exc} (a part of the path is a symlink "
                f"or not a directory)") from exc
    finally:
        os.close(dir_fd)


def _read_last(record: ContainerRecord, dir_fd: int, name: str,
               max_bytes: int) -> RootfsEntry:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    uid, gid = container_ids(record, st.st_uid, st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(name, dir_fd=dir_fd)
        return RootfsEntry("symlink", mode, uid, gid, data=target.encode())
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                     | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            entries = tuple(sorted(os.listdir(fd)))
        finally:
            os.close(fd)
        return RootfsEntry("directory", mode, uid, gid, entries=entries)
    if not stat.S_ISREG(st.st_mode):
        raise errors.InvalidInput(f"{name} is not a file, a directory or "
                                  f"a symlink")
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                 | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped meanwhile
            raise errors.InvalidInput(f"{name} is not a regular file")
        chunks, size = [], 0
        while chunk := os.read(fd, 1024 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise errors.InvalidInput(
                    f"{name} is larger than {max_bytes} bytes")
            chunks.append(chunk)
    finally:
        os.close(fd)
    return RootfsEntry("file", mode, uid, gid, data=b"".join(chunks))
