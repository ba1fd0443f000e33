"""How a container's file trees travel: tar everywhere, ``btrfs send``
between btrfs pools.

Each strategy writes the tree parts of a transfer stream (the rootfs and
every snapshot) and turns received parts back into pool volumes.
``tar`` works between any pools and shifts owners as the receiver needs;
``btrfs`` keeps snapshots' shared extents (incremental sends) and needs
owners that are container ids on disk on both sides. The receiver says
what it accepts (``accepted``); the sender picks (``choose``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import zstandard

from nova_lxd.engine.containers import snapshot_files
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.images.extract import extract_rootfs
from nova_lxd.engine.storage.btrfs_transfer import BtrfsTransfer
from nova_lxd.engine.transfer.stream import (
    StreamReader,
    StreamWriter,
    TransferCorrupt,
)

if TYPE_CHECKING:
    from nova_lxd.engine.containers.snapshots import SnapshotRecord
    from nova_lxd.engine.transfer.container import Transfers

TAR, BTRFS = "tar", "btrfs"
_MAX_WINDOW = 1 << 27
_CHUNK = 1024 * 1024


def accepted(t: Transfers) -> list[str]:
    """Formats this host can receive, best first."""
    if t.pool.driver == BTRFS and t.manager._use_idmapped_mounts():
        return [BTRFS, TAR]
    return [TAR]


def choose(t: Transfers, record: ContainerRecord,
           formats: tuple[str, ...]) -> Trees:
    if (BTRFS in formats and t.pool.driver == BTRFS
            and snapshot_files.disk_base(record) == (0, 0)):
        return BtrfsTrees(t)
    return TarTrees(t)


def of_format(t: Transfers, fmt: Any) -> Trees:
    """The strategy for a stream's trees, if this host accepts it."""
    if fmt not in accepted(t):
        raise TransferCorrupt(reason=f"its trees are {fmt!r}, which this "
                                     f"host does not take")
    return BtrfsTrees(t) if fmt == BTRFS else TarTrees(t)


@contextlib.contextmanager
def decompressed(reader: StreamReader, label: str) -> Iterator[BinaryIO]:
    """The current part, zstd-decompressed; read to its end after."""
    dctx = zstandard.ZstdDecompressor(max_window_size=_MAX_WINDOW)
    with dctx.stream_reader(reader, read_size=_CHUNK,
                            read_across_frames=True, closefd=False) as raw:
        try:
            yield io.BufferedReader(raw, buffer_size=_CHUNK)
            while raw.read(_CHUNK):      # what follows tar's end blocks
                pass
        except zstandard.ZstdError as exc:
            raise TransferCorrupt(reason=f"the files of {label} do not "
                                         f"decompress ({exc})") from None
    reader.drain()


def unpack(t: Transfers, reader: StreamReader, dest: Path,
           base: tuple[int, int], label: str) -> None:
    """A tar part extracted safely into the directory ``dest``."""
    with decompressed(reader, label) as stream:
        extract_rootfs(Path(label), dest,
                       max_bytes=t.config.max_unpacked_size,
                       max_members=t.config.max_image_members,
                       uid_shift=base[0], gid_shift=base[1], stream=stream)


class Trees:
    format = ""

    def __init__(self, t: Transfers) -> None:
        self.t = t

    def send(self, writer: StreamWriter, record: ContainerRecord,
             entries: list[SnapshotRecord]) -> None:
        raise NotImplementedError

    def receive(self, reader: StreamReader, record: ContainerRecord,
                snapshot: str | None) -> None:
        """One tree part (the rootfs when ``snapshot`` is None)."""
        raise NotImplementedError

    def finish(self, record: ContainerRecord, order: list[str]) -> None:
        """After the verified end: put what was received in place."""


class TarTrees(Trees):
    format = TAR

    def send(self, writer: StreamWriter, record: ContainerRecord,
             entries: list[SnapshotRecord]) -> None:
        t, name = self.t, record.name
        base = snapshot_files.disk_base(record)
        size = record.idmap.size if record.idmap else 0

        def tree(path: Path, label: str, snapshot: str | None) -> None:
            writer.begin("tree", snapshot=snapshot)
            snapshot_files.stream_archive(
                path, writer.data, label=label, uid_base=base[0],
                gid_base=base[1], size=size)
            writer.end()

        with t.snapshots.frozen_while_read(name, f"sending {name}"):
            tree(t.pool.volume_path(name), name, None)
        for entry in entries:
            tree(t.pool.snapshot_path(name, entry.name),
                 f"{name}/{entry.name}", entry.name)

    def receive(self, reader: StreamReader, record: ContainerRecord,
                snapshot: str | None) -> None:
        t, name = self.t, record.name
        base = snapshot_files.disk_base(record)
        if snapshot is None:
            t.pool.create_volume(
                name, record.image,
                lambda dest: unpack(t, reader, dest, base, name),
                shareable=False)
        else:
            t.pool.receive_snapshot(
                name, snapshot, lambda dest: unpack(
                    t, reader, dest, base, f"{name}/{snapshot}"))


class BtrfsTrees(Trees):
    """Snapshots oldest first, each sent relative to the one before,
    then the rootfs relative to the newest; received into the pool's
    ``incoming/`` and moved into place once the stream checked out."""

    format = BTRFS

    def __init__(self, t: Transfers) -> None:
        super().__init__(t)
        self.btrfs = BtrfsTransfer(t.pool)
        self.received: dict[str | None, Path] = {}

    def send(self, writer: StreamWriter, record: ContainerRecord,
             entries: list[SnapshotRecord]) -> None:
        t, name = self.t, record.name
        parent = None
        for entry in entries:
            path = t.pool.snapshot_path(name, entry.name)
            writer.begin("tree", snapshot=entry.name)
            self.btrfs.send(path, parent, writer.data,
                            f"{name}/{entry.name}")
            writer.end()
            parent = path
        with contextlib.ExitStack() as stack:
            # Frozen only while the read-only snapshot is taken.
            with t.snapshots.frozen_while_read(name, f"sending {name}"):
                path = stack.enter_context(self.btrfs.readonly_rootfs(name))
            writer.begin("tree", snapshot=None)
            self.btrfs.send(path, parent, writer.data, name)
            writer.end()

    def receive(self, reader: StreamReader, record: ContainerRecord,
                snapshot: str | None) -> None:
        label = record.name if snapshot is None else \
            f"{record.name}/{snapshot}"
        with decompressed(reader, label) as stream:
            self.received[snapshot] = self.btrfs.receive(record.name,
                                                         stream)

    def finish(self, record: ContainerRecord, order: list[str]) -> None:
        for snapshot in order:
            self.btrfs.place_snapshot(record.name, snapshot,
                                      self.received[snapshot])
        self.btrfs.place_rootfs(record.name, self.received[None])
        self.btrfs.discard(record.name)
