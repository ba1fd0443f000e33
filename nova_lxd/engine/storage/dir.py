"""The ``dir`` pool: plain directories on the engine's own file system.

Works everywhere; cannot limit a rootfs's size (reported, not faked);
snapshots and copies are full copies (reflinked where the file system
can share extents). Layout, under the engine's containers directory::

    <name>/rootfs                    the container's rootfs
    <name>/snapshots/<snapshot>      one snapshot's files
"""

from __future__ import annotations

import os
from pathlib import Path

from nova_lxd.engine import fsutil, names
from nova_lxd.engine.storage import copy
from nova_lxd.engine.storage.base import (
    Populate,
    StorageError,
    StoragePool,
    entries_by_age,
)

_OLD = ".rootfs-old"
_RESTORED = ".rootfs-restored"


class DirPool(StoragePool):
    driver = "dir"

    def ensure_ready(self) -> None:
        fsutil.make_dirs(self.root, mode=0o711)

    def volume_path(self, name: str) -> Path:
        return self.root / name / "rootfs"

    def _snapshots_dir(self, name: str) -> Path:
        return self.root / name / "snapshots"

    def create_volume(self, name: str, image: str, populate: Populate, *,
                      shareable: bool = True) -> Path:
        path = self.volume_path(name)
        fsutil.make_dirs(path.parent, mode=0o711)
        fsutil.remove_tree(path)
        fsutil.make_dirs(path, mode=0o755)
        populate(path)
        return path

    def delete_volume(self, name: str) -> None:
        # The container's directory (config, logs, record) is the
        # manager's to remove; the rootfs and snapshots are ours.
        for path in (self.volume_path(name), self._snapshots_dir(name),
                     self.root / name / _OLD, self.root / name / _RESTORED):
            fsutil.remove_tree(path)

    def rename_volume(self, old: str, new: str) -> None:
        """The whole ``<name>/`` directory moves: in the engine's default
        layout it is also the container's directory (config, logs)."""
        source, target = self.root / old, self.root / new
        if source.exists() and not target.exists():
            os.rename(source, target)

    # -- snapshots ---------------------------------------------------------

    def snapshot_path(self, name: str, snapshot: str) -> Path:
        names.validate_snapshot_name(snapshot)
        return self._snapshots_dir(name) / snapshot

    def create_snapshot(self, name: str, snapshot: str) -> Path:
        dest = self._new_snapshot_path(name, snapshot)
        return copy.copy_tree(self.volume_path(name), dest, pool=self.name)

    def receive_snapshot(self, name: str, snapshot: str,
                         populate: Populate) -> Path:
        dest = self._new_snapshot_path(name, snapshot)
        fsutil.make_dirs(dest, mode=0o755)
        populate(dest)
        return dest

    def list_snapshots(self, name: str) -> list[str]:
        return entries_by_age(self._snapshots_dir(name))

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        fsutil.remove_tree(self.snapshot_path(name, snapshot))

    def restore_snapshot(self, name: str, snapshot: str) -> None:
        """Copy first, then two renames: a crash at any point leaves
        either the old rootfs or the restored one (see ``repair``)."""
        source = self.snapshot_path(name, snapshot)
        if not source.is_dir():
            raise StorageError(pool=self.name,
                               reason=f"no snapshot {snapshot} of {name}")
        restored = self.root / name / _RESTORED
        old = self.root / name / _OLD
        fsutil.remove_tree(restored)
        copy.copy_tree(source, restored, pool=self.name)
        fsutil.remove_tree(old)
        os.rename(self.volume_path(name), old)
        os.rename(restored, self.volume_path(name))
        fsutil.remove_tree(old)

    def repair(self, name: str) -> None:
        """Finish or undo a restore or copy a crash interrupted."""
        rootfs = self.volume_path(name)
        restored = self.root / name / _RESTORED
        old = self.root / name / _OLD
        if not rootfs.exists():
            if restored.is_dir() and old.is_dir():
                os.rename(restored, rootfs)   # the copy was complete
            elif old.is_dir():
                os.rename(old, rootfs)
        if rootfs.exists():
            fsutil.remove_tree(restored)
            fsutil.remove_tree(old)
        copy.remove_partials(self.root / name)
        copy.remove_partials(self._snapshots_dir(name))

    def copy_volume(self, source: str, target: str,
                    snapshot: str | None = None) -> Path:
        origin = (self.snapshot_path(source, snapshot) if snapshot
                  else self.volume_path(source))
        dest = self.volume_path(target)
        fsutil.make_dirs(dest.parent, mode=0o711)
        fsutil.remove_tree(dest)
        return copy.copy_tree(origin, dest, pool=self.name)
