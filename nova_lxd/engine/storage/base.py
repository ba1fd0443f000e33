"""The storage pool interface: where container root file systems live.

A pool holds one volume per container (its rootfs) and that volume's
snapshots. Drivers differ in how they make them: ``dir`` copies files
and works on any file system; ``btrfs`` makes copy-on-write subvolumes
and enforces root disk quotas. The container manager only speaks this
interface, so the rest of the engine does not know which driver runs.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from pathlib import Path

from nova_lxd.engine import errors

Populate = Callable[[Path], None]
"""Fills an empty directory with a rootfs (the engine's safe extraction)."""


class StorageError(errors.HostError):
    msg_fmt = "Storage pool %(pool)s: %(reason)s."


class QuotaUnsupported(errors.InvalidInput):
    msg_fmt = ("Storage pool %(pool)s (%(driver)s) cannot enforce a root "
               "disk size; use a btrfs pool for quotas.")


class DiskShrinkRefused(errors.InvalidInput):
    msg_fmt = ("Cannot shrink the root disk of %(name)s from %(old)s to "
               "%(new)s bytes: it uses %(used)s bytes.")


@dataclasses.dataclass(frozen=True)
class VolumeUsage:
    used_bytes: int | None
    """Bytes the volume holds exclusively (None: not measured)."""
    quota_bytes: int | None
    """The enforced limit, or None."""


class StoragePool(abc.ABC):
    """One pool; every method is safe to repeat after a crash."""

    driver: str = ""
    enforces_quota: bool = False
    shares_image_volumes: bool = False
    """True when creating from an image is a CoW copy of an image volume
    unpacked once (``create_volume`` then calls ``populate`` once per
    image, not per container)."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = Path(root)

    # -- life of the pool ------------------------------------------------

    @abc.abstractmethod
    def ensure_ready(self) -> None:
        """Create or mount what the pool needs (after a host reboot
        too); raise StorageError saying what is wrong."""

    # -- container volumes -------------------------------------------------

    @abc.abstractmethod
    def volume_path(self, name: str) -> Path:
        """Where the container's rootfs is (it may not exist yet)."""

    @abc.abstractmethod
    def create_volume(self, name: str, image: str, populate: Populate, *,
                      shareable: bool = True) -> Path:
        """A new rootfs for ``name`` from ``image`` (a fingerprint).
        ``populate`` unpacks the image into an empty directory; with
        ``shareable`` False (owners shifted per container) the pool must
        not reuse another container's unpacking."""

    @abc.abstractmethod
    def delete_volume(self, name: str) -> None:
        """Remove the rootfs and every snapshot of ``name``; no error when
        they are gone already."""

    @abc.abstractmethod
    def rename_volume(self, old: str, new: str) -> None:
        """Move the rootfs and snapshots of ``old`` to ``new``; nothing to
        do when ``old`` has none (moved already: safe to repeat, and to
        call backwards to undo)."""

    def set_quota(self, name: str, size_bytes: int | None) -> None:
        """Limit the rootfs to ``size_bytes`` (None: no limit); refuse a
        size below what it already uses."""
        raise QuotaUnsupported(pool=self.name, driver=self.driver)

    def usage(self, name: str) -> VolumeUsage:
        return VolumeUsage(used_bytes=None, quota_bytes=None)

    # -- snapshots ---------------------------------------------------------

    @abc.abstractmethod
    def snapshot_path(self, name: str, snapshot: str) -> Path:
        """Where a snapshot's files are (read-only by convention)."""

    @abc.abstractmethod
    def create_snapshot(self, name: str, snapshot: str) -> Path:
        """A consistent copy of the rootfs as it is now (the caller
        freezes a running container around this call)."""

    def snapshot_usage(self, name: str, snapshot: str) -> int | None:
        """Bytes the snapshot refers to, where the pool measures it
        cheaply (btrfs: its qgroup); None elsewhere."""
        return None

    @abc.abstractmethod
    def list_snapshots(self, name: str) -> list[str]:
        """Names of the snapshots of ``name``, oldest first."""

    def _new_snapshot_path(self, name: str, snapshot: str) -> Path:
        """The path for a new snapshot, its parent made, or an error
        when the name is taken."""
        dest = self.snapshot_path(name, snapshot)
        if dest.exists():
            raise StorageError(pool=self.name, reason=(
                f"snapshot {snapshot} of {name} exists"))
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return dest

    @abc.abstractmethod
    def receive_snapshot(self, name: str, snapshot: str,
                         populate: Populate) -> Path:
        """A snapshot of ``name`` made from files ``populate`` writes into
        an empty directory (a container received from another host); a
        failure leaves what ``delete_volume`` removes."""

    @abc.abstractmethod
    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Remove one snapshot; no error when it is gone."""

    @abc.abstractmethod
    def restore_snapshot(self, name: str, snapshot: str) -> None:
        """Make the rootfs what the snapshot holds (container stopped)."""

    @abc.abstractmethod
    def copy_volume(self, source: str, target: str,
                    snapshot: str | None = None) -> Path:
        """A new rootfs for ``target``: a copy of ``source``'s rootfs or of
        one of its snapshots."""

    # -- images ------------------------------------------------------------

    def delete_image(self, image: str) -> None:
        """Forget the pool's unpacking of ``image`` (if it keeps any)."""
        return None

    @abc.abstractmethod
    def repair(self, name: str) -> None:
        """Finish or undo what a crash interrupted for ``name``."""


def entries_by_age(directory: Path) -> list[str]:
    """Names in ``directory`` (hidden ones skipped), oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if not p.name.startswith(".")]
    return [p.name for p in sorted(found,
                                   key=lambda p: p.stat().st_mtime_ns)]
