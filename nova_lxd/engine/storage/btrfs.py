"""The ``btrfs`` pool: copy-on-write subvolumes with root disk quotas.

An image is unpacked once into a read-only subvolume; a container's
rootfs is a writable snapshot of it (instant, sharing every extent);
container snapshots are read-only snapshots; quotas are qgroup limits on
the referenced size. The pool lives on a block device, in an existing
btrfs directory, or in a sparse file the engine formats and loop-mounts
itself (as LXD does); ``ensure_ready`` mounts it again after a reboot.
Layout under the pool's mount point::

    images/<fingerprint>            read-only subvolume per image
    containers/<name>               writable subvolume per container
    snapshots/<name>/<snapshot>     read-only subvolumes
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nova_lxd.engine import fsutil, names
from nova_lxd.engine.locks import FileLock
from nova_lxd.engine.storage.base import (
    DiskShrinkRefused,
    Populate,
    StorageError,
    StoragePool,
    VolumeUsage,
    entries_by_age,
)
from nova_lxd.engine.storage.btrfs_transfer import BtrfsTransfer

_PARTIAL = ".partial-"
_OLD = ".old-"
_RESTORED = ".restored-"


class BtrfsPool(StoragePool):
    driver = "btrfs"
    enforces_quota = True
    shares_image_volumes = True

    def __init__(self, name: str, root: Path, *, source: str = "",
                 loop_file: Path | None = None,
                 loop_size: int = 20 * 1024 ** 3) -> None:
        """``root``: the mount point (or, for a ``source`` directory on
        btrfs, None and the directory is used as is)."""
        super().__init__(name, Path(source) if _is_dir_source(source)
                         else root)
        self.source = source
        self.loop_file = loop_file
        self.loop_size = loop_size

    # -- life of the pool ------------------------------------------------

    def ensure_ready(self) -> None:
        if _is_dir_source(self.source):
            if _fstype(self.root) != "btrfs":
                raise StorageError(pool=self.name, reason=(
                    f"{self.root} is on {_fstype(self.root) or 'no'} file "
                    f"system, not btrfs"))
        elif not _mounted(self.root):
            self._mount()
        for sub in ("images", "containers", "snapshots"):
            fsutil.make_dirs(self.root / sub, mode=0o711)
        self._run("quota", "enable", str(self.root))

    def _mount(self) -> None:
        device = self.source or self._loop_file()
        if self.source:
            kind = _blkid_type(device)
            if kind == "":
                self._mkfs(device)
            elif kind != "btrfs":
                raise StorageError(pool=self.name, reason=(
                    f"{device} holds a {kind} file system; refusing to "
                    f"format it (wipe it or choose another device)"))
        fsutil.make_dirs(self.root, mode=0o711)
        options = "user_subvol_rm_allowed"
        cmd = ["mount", "-t", "btrfs", "-o",
               options + (",loop" if not self.source else ""),
               str(device), str(self.root)]
        result = subprocess.run(cmd, capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise StorageError(pool=self.name, reason=(
                f"mounting {device} on {self.root} failed: "
                f"{result.stderr.strip()}"))

    def _loop_file(self) -> Path:
        if self.loop_file is None:
            raise StorageError(pool=self.name,
                               reason="no source and no loop file given")
        if not self.loop_file.exists():
            fsutil.make_dirs(self.loop_file.parent, mode=0o700)
            partial = self.loop_file.with_name(".new-" + self.loop_file.name)
            with open(partial, "wb") as f:
                f.truncate(self.loop_size)
            self._mkfs(partial)
            os.rename(partial, self.loop_file)
        return self.loop_file

    def _mkfs(self, device: Path | str) -> None:
        result = subprocess.run(["mkfs.btrfs", "-q", "-L",
                                 f"nova-lxd-{self.name}", str(device)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StorageError(pool=self.name, reason=(
                f"mkfs.btrfs {device} failed: {result.stderr.strip()}"))

    def _run(self, *args: str) -> str:
        result = subprocess.run(["btrfs", *args], capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            raise StorageError(pool=self.name, reason=(
                f"btrfs {' '.join(args)} failed: "
                f"{(result.stderr or result.stdout).strip()}"))
        return result.stdout

    # -- subvolume helpers -------------------------------------------------

    def _create_subvolume(self, path: Path) -> None:
        self._run("subvolume", "create", str(path))

    def _snapshot(self, source: Path, dest: Path, *,
                  readonly: bool = False) -> None:
        args = ["subvolume", "snapshot"] + (["-r"] if readonly else [])
        self._run(*args, str(source), str(dest))

    def _delete_subvolume(self, path: Path) -> None:
        """Delete ``path`` and any subvolume a tenant made inside it."""
        if not path.exists() and not path.is_symlink():
            return
        if not _is_subvolume(path):
            fsutil.remove_tree(path)
            return
        nested = self._run("subvolume", "list", "-o", str(path))
        inner = [self._from_top(line.rsplit(" path ", 1)[-1].strip())
                 for line in nested.splitlines() if " path " in line]
        for sub in sorted(inner, key=lambda p: -len(p.parts)):
            self._delete_subvolume(sub)
        # -f: received subvolumes (btrfs receive) refuse the flip without.
        self._run("property", "set", "-f", "-ts", str(path), "ro", "false")
        self._run("subvolume", "delete", str(path))

    def _from_top(self, relative: str) -> Path:
        """A path printed by ``subvolume list`` (relative to the file
        system's top level) as a path on this host."""
        target = _findmnt("TARGET", self.root)
        fsroot = _findmnt("FSROOT", self.root) or "/"
        return Path(target) / (Path("/") / relative).relative_to(fsroot)

    # -- container volumes -------------------------------------------------

    def volume_path(self, name: str) -> Path:
        return self.root / "containers" / name

    def _image_volume(self, image: str, populate: Populate) -> Path:
        path = self.root / "images" / image
        with FileLock(self.root / "images" / f".{image}.lock", timeout=600,
                      what=f"image {image[:12]}"):
            if path.exists():
                return path
            partial = path.with_name(_PARTIAL + image)
            self._delete_subvolume(partial)
            self._create_subvolume(partial)
            try:
                populate(partial)
                self._run("property", "set", "-ts", str(partial), "ro",
                          "true")
            except BaseException:
                self._delete_subvolume(partial)
                raise
            os.rename(partial, path)
        return path

    def create_volume(self, name: str, image: str, populate: Populate, *,
                      shareable: bool = True) -> Path:
        dest = self.volume_path(name)
        self._delete_subvolume(dest)
        if not shareable:
            self._create_subvolume(dest)
            populate(dest)
            return dest
        self._snapshot(self._image_volume(image, populate), dest)
        return dest

    def delete_volume(self, name: str) -> None:
        BtrfsTransfer(self).discard(name)
        for snapshot in self.list_snapshots(name):
            self.delete_snapshot(name, snapshot)
        fsutil.remove_tree(self.root / "snapshots" / name)
        for path in (self.volume_path(name),
                     self.root / "containers" / (_OLD + name),
                     self.root / "containers" / (_RESTORED + name)):
            self._delete_subvolume(path)

    def rename_volume(self, old: str, new: str) -> None:
        """A subvolume is renamed like a directory (its qgroup and quota
        stay with it); the snapshots' directory moves as a whole."""
        for base in (self.root / "containers", self.root / "snapshots"):
            if (base / old).exists() and not (base / new).exists():
                os.rename(base / old, base / new)

    def set_quota(self, name: str, size_bytes: int | None) -> None:
        path = self.volume_path(name)
        if size_bytes is not None:
            used = self.usage(name).used_bytes or 0
            if size_bytes < used:
                raise DiskShrinkRefused(name=name, old="its current size",
                                        new=size_bytes, used=used)
        self._run("qgroup", "limit",
                  "none" if size_bytes is None else str(size_bytes),
                  str(path))

    def usage(self, name: str) -> VolumeUsage:
        """Referenced bytes and limit from the subvolume's qgroup."""
        return self._qgroup(self.volume_path(name))

    def snapshot_usage(self, name: str, snapshot: str) -> int | None:
        return self._qgroup(self.snapshot_path(name, snapshot)).used_bytes

    def _qgroup(self, path: Path) -> VolumeUsage:
        out = self._run("qgroup", "show", "--raw", "-r", "-f", str(path))
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0].startswith("0/"):
                limit = fields[3] if len(fields) > 3 else "none"
                return VolumeUsage(
                    used_bytes=int(fields[1]),
                    quota_bytes=None if limit == "none" else int(limit))
        return VolumeUsage(used_bytes=None, quota_bytes=None)

    # -- snapshots ---------------------------------------------------------

    def snapshot_path(self, name: str, snapshot: str) -> Path:
        names.validate_snapshot_name(snapshot)
        return self.root / "snapshots" / name / snapshot

    def create_snapshot(self, name: str, snapshot: str) -> Path:
        dest = self._new_snapshot_path(name, snapshot)
        self._snapshot(self.volume_path(name), dest, readonly=True)
        return dest

    def receive_snapshot(self, name: str, snapshot: str,
                         populate: Populate) -> Path:
        """Its own subvolume (no extents shared with the rootfs: the tar
        stream carries whole trees), read-only once filled."""
        dest = self._new_snapshot_path(name, snapshot)
        self._create_subvolume(dest)
        populate(dest)
        self._run("property", "set", "-ts", str(dest), "ro", "true")
        return dest

    def list_snapshots(self, name: str) -> list[str]:
        return entries_by_age(self.root / "snapshots" / name)

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        self._delete_subvolume(self.snapshot_path(name, snapshot))

    def restore_snapshot(self, name: str, snapshot: str) -> None:
        """A writable snapshot of the snapshot replaces the rootfs; the
        quota moves to the new subvolume."""
        source = self.snapshot_path(name, snapshot)
        if not source.is_dir():
            raise StorageError(pool=self.name,
                               reason=f"no snapshot {snapshot} of {name}")
        quota = self.usage(name).quota_bytes
        containers = self.root / "containers"
        restored = containers / (_RESTORED + name)
        old = containers / (_OLD + name)
        self._delete_subvolume(restored)
        self._snapshot(source, restored)
        self._delete_subvolume(old)
        os.rename(self.volume_path(name), old)
        os.rename(restored, self.volume_path(name))
        self._delete_subvolume(old)
        if quota is not None:
            self.set_quota(name, quota)

    def repair(self, name: str) -> None:
        """Finish or undo a restore a crash interrupted."""
        containers = self.root / "containers"
        rootfs = self.volume_path(name)
        restored = containers / (_RESTORED + name)
        old = containers / (_OLD + name)
        if not rootfs.exists():
            if restored.exists() and old.exists():
                os.rename(restored, rootfs)
            elif old.exists():
                os.rename(old, rootfs)
        if rootfs.exists():
            self._delete_subvolume(restored)
            self._delete_subvolume(old)

    def copy_volume(self, source: str, target: str,
                    snapshot: str | None = None) -> Path:
        origin = (self.snapshot_path(source, snapshot) if snapshot
                  else self.volume_path(source))
        dest = self.volume_path(target)
        self._delete_subvolume(dest)
        self._snapshot(origin, dest)
        return dest

    # -- images ------------------------------------------------------------

    def delete_image(self, image: str) -> None:
        self._delete_subvolume(self.root / "images" / image)


def _is_dir_source(source: str) -> bool:
    return bool(source) and Path(source).is_dir()


def _findmnt(column: str, path: Path) -> str:
    result = subprocess.run(["findmnt", "-n", "-o", column, "-T",
                             str(path)], capture_output=True, text=True,
                            check=False)
    return result.stdout.strip()


def _fstype(path: Path) -> str:
    return _findmnt("FSTYPE", path)


def _mounted(path: Path) -> bool:
    result = subprocess.run(["findmnt", "-n", "--mountpoint", str(path)],
                            capture_output=True, check=False)
    return result.returncode == 0


def _blkid_type(device: str | Path) -> str:
    result = subprocess.run(["blkid", "-o", "value", "-s", "TYPE",
                             str(device)], capture_output=True, text=True,
                            check=False)
    return result.stdout.strip()


def _is_subvolume(path: Path) -> bool:
    """Subvolume roots have inode 256 on btrfs."""
    try:
        return path.stat(follow_symlinks=False).st_ino == 256
    except FileNotFoundError:
        return False
