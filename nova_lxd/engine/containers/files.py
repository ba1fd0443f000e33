"""Files put into a container's rootfs by the host (seeds, pushes) and
read back from it (pulls).

Paths are resolved inside the rootfs without following symlinks (see
``fsutil.write_in_rootfs``), and owners are container ids: when the
rootfs is chown-shifted rather than idmap-mounted, they are moved into
the container's host range here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import stat
from collections.abc import Iterable, Iterator
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
    append: bool = False
    """Add to an existing file (keeping its owner and mode) rather than
    replace it."""

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
                                   parents=root_ids, append=item.append)
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
    rootfs (see ``parent_dir``: no symlink and no '..' leads outside).
    Devices, fifos and sockets are refused."""
    parts = path_parts(path)
    with parent_dir(record, rootfs, path, "read") as dir_fd:
        return _read_last(record, dir_fd, parts[-1] if parts else ".",
                          max_bytes)


def path_parts(path: str) -> list[str]:
    """The components of an absolute path in a container ('/' has
    none), or InvalidInput for a relative one or one with '..'."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not path.startswith("/") or ".." in parts or "\0" in path:
        raise errors.InvalidInput(f"Invalid path {path!r}: paths are "
                                  f"absolute, without '..'")
    return parts


@contextlib.contextmanager
def parent_dir(record: ContainerRecord, rootfs: Path, path: str,
               action: str) -> Iterator[int]:
    """A descriptor of the directory holding ``path``'s last component,
    reached by opening each component with O_NOFOLLOW from the rootfs'
    own descriptor: no symlink (an absolute one to the host's /etc, a
    relative one climbing out) leads outside. OSErrors inside the block
    become typed errors naming ``action``."""
    parts = path_parts(path)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(rootfs, flags)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, flags, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        yield dir_fd
    except FileNotFoundError as exc:
        raise errors.PathNotFound(path=path, name=record.name) from exc
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            raise errors.DirectoryNotEmpty(path=path,
                                           name=record.name) from exc
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR):
            raise errors.OperationFailed(
                action=f"{action} {path} in", name=record.name,
                reason=exc.strerror or str(exc)) from exc
        raise errors.UnsafePath(action=action, path=path, name=record.name,
                                reason=exc.strerror or str(exc)) from exc
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


DIR_MODE = 0o750
"""LXD's mode for a pushed directory without X-LXD-mode (sftp has no
umask)."""
MAX_LINK_TARGET = 4095


def _kind(dir_fd: int, name: str) -> str:
    """What ``name`` is, for messages: "directory", "symlink", "file"..."""
    mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file" if stat.S_ISREG(mode) else "special file"


def _last(path: str, action: str) -> str:
    parts = path_parts(path)
    if not parts:
        raise errors.InvalidInput(f"Cannot {action} '/', the container's "
                                  f"root directory")
    return parts[-1]


def make_directory(record: ContainerRecord, rootfs: Path, path: str, *,
                   mode: int = DIR_MODE, uid: int = 0, gid: int = 0) -> None:
    """Create one directory (its parent must exist) owned by the
    container's ``uid:gid``. An existing directory is left as it is, as
    LXD leaves it, so a client may push a tree over an existing one."""
    parts = path_parts(path)
    if not parts:  # '/' is there already
        return
    name = parts[-1]
    if not 0 <= mode <= 0o7777:
        raise errors.InvalidInput(f"Invalid mode {mode:o} for {path}")
    owner = host_ids(record, uid, gid)
    with parent_dir(record, rootfs, path, "create") as dir_fd:
        try:
            # 0700 until owner and mode are set: never a root-owned
            # directory open to others, not even for a moment.
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            kind = _kind(dir_fd, name)
            if kind != "directory":
                raise errors.PathExists(path=path, name=record.name,
                                        kind=kind) from None
            return
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                     | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            os.fchown(fd, *owner)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def make_symlink(record: ContainerRecord, rootfs: Path, path: str,
                 target: str, *, uid: int = 0, gid: int = 0) -> None:
    """Create a symlink to ``target`` (never followed here: the container
    resolves it in its own root). The same link already there is fine."""
    name = _last(path, "create a symlink at")
    if not target or "\0" in target or \
            len(target.encode()) > MAX_LINK_TARGET:
        raise errors.InvalidInput(
            f"Invalid symlink target for {path}: 1 to {MAX_LINK_TARGET} "
            f"bytes, without NUL")
    owner = host_ids(record, uid, gid)
    with parent_dir(record, rootfs, path, "create a symlink at") as dir_fd:
        try:
            os.symlink(target, name, dir_fd=dir_fd)
        except FileExistsError:
            kind = _kind(dir_fd, name)
            if kind == "symlink" and \
                    os.readlink(name, dir_fd=dir_fd) == target:
                return
            raise errors.PathExists(path=path, name=record.name,
                                    kind=kind) from None
        os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)


def delete_path(record: ContainerRecord, rootfs: Path, path: str) -> None:
    """Remove a file, a symlink (not what it points to) or an empty
    directory: like LXD, a directory with contents is refused rather
    than removed recursively."""
    name = _last(path, "delete")
    with parent_dir(record, rootfs, path, "delete") as dir_fd:
        if _kind(dir_fd, name) == "directory":
            os.rmdir(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
