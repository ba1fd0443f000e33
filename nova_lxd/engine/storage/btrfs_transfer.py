"""``btrfs send`` / ``btrfs receive`` between two btrfs pools.

Between btrfs pools a container travels as send streams instead of tar:
its snapshots oldest first, each relative to the one before (``-p``),
then its rootfs relative to the newest snapshot, so the receiving pool
gets the same shared extents (a tar stream would store every snapshot
whole). Only for containers whose files are owned by container ids on
disk (idmapped mounts, the default) on both sides: a send stream cannot
shift owners.

Received subvolumes land in ``incoming/<name>/`` (read-only, as
``btrfs receive`` leaves them) and are then snapshotted into place:
snapshots read-only, the rootfs writable; the received ones are
deleted. ``discard`` removes what a
failed receive left; the pool's ``delete_volume`` does too, so crash
recovery needs nothing more.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from nova_lxd.engine import fsutil
from nova_lxd.engine.containers import snapshot_files
from nova_lxd.engine.images.mount import set_death_signal
from nova_lxd.engine.storage.base import StorageError

if TYPE_CHECKING:
    from nova_lxd.engine.storage.btrfs import BtrfsPool

_SENDING = ".sending-"
_CHUNK = 1024 * 1024


class BtrfsTransfer:
    def __init__(self, pool: BtrfsPool) -> None:
        self.pool = pool

    # -- sending -----------------------------------------------------------

    @contextlib.contextmanager
    def readonly_rootfs(self, name: str) -> Iterator[Path]:
        """A read-only snapshot of the rootfs as it is now (send needs
        one), removed afterwards."""
        path = self.pool.root / "containers" / (_SENDING + name)
        self.pool._delete_subvolume(path)
        self.pool._snapshot(self.pool.volume_path(name), path,
                            readonly=True)
        try:
            yield path
        finally:
            self.pool._delete_subvolume(path)

    def send(self, path: Path, parent: Path | None,
             sink: Callable[[bytes], None], label: str) -> None:
        """``btrfs send [-p parent] path | zstd``, handed to ``sink``."""
        argv = ["btrfs", "send", "-q"]
        if parent is not None:
            argv += ["-p", str(parent)]
        snapshot_files.stream_compressed([*argv, str(path)], sink, label)

    # -- receiving -------------------------------------------------------

    def incoming(self, name: str) -> Path:
        return self.pool.root / "incoming" / name

    def receive(self, name: str, stream: BinaryIO) -> Path:
        """Feed a decompressed send stream to ``btrfs receive``; returns
        the read-only subvolume it made under ``incoming/<name>/``."""
        staging = self.incoming(name)
        fsutil.make_dirs(staging, mode=0o700)
        before = {p.name for p in staging.iterdir()}
        proc = subprocess.Popen(
            ["btrfs", "receive", "-q", "-e", "--chroot", str(staging)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, cwd="/", preexec_fn=set_death_signal)
        assert proc.stdin is not None and proc.stderr is not None
        try:
            while chunk := stream.read(_CHUNK):
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        said = proc.stderr.read().decode("utf-8", "replace").strip()
        if proc.wait() != 0:
            raise StorageError(pool=self.pool.name, reason=(
                f"btrfs receive of {name} failed: {said[-500:]}"))
        made = [p for p in staging.iterdir() if p.name not in before]
        if len(made) != 1:
            raise StorageError(pool=self.pool.name, reason=(
                f"btrfs receive of {name} made {len(made)} subvolumes"))
        return made[0]

    def place_snapshot(self, name: str, snapshot: str,
                       received: Path) -> Path:
        """A read-only snapshot of the received subvolume (sharing its
        extents) becomes snapshot ``snapshot``; a read-only subvolume
        cannot be renamed, and the received one goes with ``discard``."""
        dest = self.pool._new_snapshot_path(name, snapshot)
        self.pool._snapshot(received, dest, readonly=True)
        return dest

    def place_rootfs(self, name: str, received: Path) -> Path:
        """A writable snapshot of the received subvolume is the rootfs."""
        dest = self.pool.volume_path(name)
        self.pool._delete_subvolume(dest)
        self.pool._snapshot(received, dest)
        self.pool._delete_subvolume(received)
        return dest

    def discard(self, name: str) -> None:
        """What a receive of ``name`` left in ``incoming/``."""
        staging = self.incoming(name)
        if staging.is_dir():
            for path in staging.iterdir():
                self.pool._delete_subvolume(path)
            fsutil.remove_tree(staging)
        self.pool._delete_subvolume(
            self.pool.root / "containers" / (_SENDING + name))
