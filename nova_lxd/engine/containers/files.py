"""Files put into a container's rootfs by the host (seeds, pushes).

Paths are resolved inside the rootfs without following symlinks (see
``fsutil.write_in_rootfs``), and owners are container ids: when the
rootfs is chown-shifted rather than idmap-mounted, they are moved into
the container's host range here.
"""

from __future__ import annotations

import dataclasses
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
