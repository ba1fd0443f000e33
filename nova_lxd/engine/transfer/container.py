"""Send a container to another host, or receive one, as a checked stream.

The sender writes the container's record (a manifest), its rootfs and
its snapshots (each a ``tar | zstd`` of one tree, owners written as the
container sees them) into a ``StreamWriter``; the receiver builds a new
container from them in its own id range and storage pool. The receiver
commits (record ``ready``) only after the stream's trailer proved that
every byte arrived as sent; anything that fails before (a cut
connection, a full disk, a checksum mismatch, a bad tree) removes all it
made, and a crash leaves a ``creating`` record that recovery removes.
The sender changes nothing: the caller deletes the source once the
receiver has confirmed.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

from oslo_log import log as logging

from nova_lxd.engine import errors, fsutil, limits, names, nics
from nova_lxd.engine.containers import criu, records, snapshot_files
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.containers.snapshots import READY, SnapshotRecord
from nova_lxd.engine.nics import Nic
from nova_lxd.engine.transfer import live as livemove
from nova_lxd.engine.transfer import trees
from nova_lxd.engine.transfer.stream import (
    StreamReader,
    StreamWriter,
    TransferCorrupt,
)

if TYPE_CHECKING:
    from nova_lxd.engine.containers.manager import ContainerManager
    from nova_lxd.engine.containers.snapshots import Snapshots

LOG = logging.getLogger(__name__)

FORMAT = 1
_RECORD_KEYS = ("image", "privileged", "limits", "halt_signal", "hostname",
                "metadata", "nics", "nesting", "shared_idmap",
                "root_disk_bytes", "created_at", "stateful")
"""What a container keeps when it moves; its name, id range and phase
are the receiver's."""
_MAX_WINDOW = 1 << 27

ByteProgress = Callable[[int], None]
"""Called with the bytes sent or received so far."""


@dataclasses.dataclass(frozen=True)
class TransferSummary:
    name: str
    sha256: str
    bytes: int
    snapshots: tuple[str, ...]
    seconds: float
    trees: str = "tar"
    """How the file trees travelled (``tar`` or ``btrfs``)."""


class TransferFailed(errors.EngineError):
    msg_fmt = ("Could not receive container %(name)s: %(reason)s. Nothing "
               "was kept on this host.")


class _Counting(io.RawIOBase):
    """The sink a ``StreamWriter`` writes to: counts for progress."""

    def __init__(self, out: BinaryIO, progress: ByteProgress | None) -> None:
        self._out = out
        self._progress = progress
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._out.write(data)
        self.count += len(data)
        if self._progress is not None:
            self._progress(self.count)
        return len(data)


class Transfers:
    """Sending and receiving whole containers for one manager."""

    def __init__(self, manager: ContainerManager,
                 snapshots: Snapshots) -> None:
        self.manager = manager
        self.snapshots = snapshots
        self.pool = manager.pool
        self.config = manager.config

    # -- send --------------------------------------------------------------

    def accepted_formats(self) -> list[str]:
        """How this host can receive trees (a receiver tells a sender)."""
        return trees.accepted(self)

    def send(self, name: str, out: BinaryIO, *, with_snapshots: bool = True,
             progress: ByteProgress | None = None,
             formats: tuple[str, ...] = (trees.TAR,),
             live: bool = False) -> TransferSummary:
        """Write ``name`` to ``out``, its trees in the best of the
        receiver's ``formats``; a running container is frozen while its
        rootfs is read (as for a copy), snapshots are not. ``live``: its
        processes are dumped (it stops) and sent too; the caller ends
        with ``livemove.finish`` (``nova_lxd.engine.transfer.live``)."""
        start = time.monotonic()
        moving = live
        sink = _Counting(out, progress)
        writer = StreamWriter(sink)
        with self.manager.locked(name) as record:
            if record.rescue_image:
                raise errors.InvalidState(action="move", name=name,
                                          status="rescued")
            entries = (self.snapshots.list(name) if with_snapshots else [])
            state = (livemove.dump(self.manager, record) if moving
                     else None)
            try:
                strategy = trees.choose(self, record, formats)
                writer.json_part("manifest", {
                    **_manifest(record, entries), "trees": strategy.format,
                    **({"live": True, "idmap": record.to_dict()["idmap"]}
                       if moving else {})})
                strategy.send(writer, record, entries)
                if state is not None:
                    writer.begin("live")
                    snapshot_files.stream_archive(state, writer.data,
                                                  label=f"{name} (dump)")
                    writer.end()
            except BaseException:
                if state is not None:    # the processes run on here
                    criu.restore(name, self.config.containers_dir, state,
                                 record.host_root)
                    fsutil.remove_tree(state)
                raise
            for entry in entries:
                state = self.snapshots.state_dir(name, entry.name)
                if entry.stateful and state.is_dir():
                    writer.begin("state", snapshot=entry.name)
                    snapshot_files.stream_archive(
                        state, writer.data, label=f"{name}/{entry.name}")
                    writer.end()
            digest = writer.finish()
        summary = TransferSummary(
            name=name, sha256=digest, bytes=sink.count,
            snapshots=tuple(e.name for e in entries),
            seconds=time.monotonic() - start, trees=strategy.format)
        LOG.info("Sent container %s (%d snapshots, %s, %d bytes, sha256 %s)"
                 " in %.2f s", name, len(entries), summary.trees,
                 summary.bytes, digest[:12], summary.seconds)
        return summary

    # -- receive -----------------------------------------------------------

    def receive(self, name: str, source: BinaryIO, *,
                hostname: str | None = None,
                metadata: dict[str, str] | None = None,
                nic_specs: Iterable[Nic | dict[str, Any]] | None = None,
                progress: ByteProgress | None = None) -> ContainerRecord:
        """A new stopped container ``name`` from a stream ``send`` wrote;
        its ``hostname``, ``metadata`` and ``nic_specs`` are the sender's
        unless given."""
        names.validate_container_name(name)
        if hostname is not None:
            names.validate_hostname(hostname)
        if metadata is not None:
            metadata = names.validate_metadata(metadata)
        nic_list = None if nic_specs is None else nics.validate_all(nic_specs)
        reader = StreamReader(_Progressing(source, progress))
        if (reader.next_part() or {}).get("kind") != "manifest":
            raise TransferCorrupt(reason="it does not begin with a manifest")
        manifest = _check_manifest(reader.read_json_part())
        kept = manifest["record"]
        parsed = limits.parse_limits(kept["limits"])
        limits.check_feasible(parsed, self.manager.host)
        manager = self.manager
        stateful = bool(kept.get("stateful"))
        with manager.claim(name) as (lock, revert):
            record = manager._reserve(
                name, kept["image"], bool(kept["privileged"]),
                dict(kept["limits"]), revert,
                shared=bool(kept["shared_idmap"]), stateful=stateful,
                mapping=livemove.wanted_idmap(manifest))
            record = record.replace(
                hostname=hostname if hostname is not None
                else kept["hostname"],
                metadata=metadata if metadata is not None
                else names.validate_metadata(kept["metadata"]),
                nics=nic_list if nic_list is not None
                else nics.validate_all(kept["nics"]),
                nesting=bool(kept["nesting"]),
                halt_signal=str(kept["halt_signal"]),
                created_at=float(kept["created_at"]), stateful=stateful)
            revert.add(lambda: self.pool.delete_volume(name))
            try:
                entries = self._receive_trees(record, reader, manifest)
            except OSError as exc:
                raise TransferFailed(name=name, reason=_os_reason(exc)
                                     ) from exc
            record = manager._apply_root_disk(record,
                                             kept["root_disk_bytes"])
            manager._write_lxc_config(record, parsed)
            self.snapshots.adopt(name, entries)
            record = record.replace(phase=records.READY)
            manager.records.save(record)
            revert.success()
        if manifest.get("live"):
            livemove.restore(manager, record)
        LOG.info("Received container %s (%d snapshots, %d bytes, sha256 "
                 "%s)", name, len(entries), reader.bytes,
                 (reader.sha256 or "")[:12])
        return record

    def _receive_trees(self, record: ContainerRecord, reader: StreamReader,
                       manifest: dict[str, Any]) -> list[SnapshotRecord]:
        """Unpack every part up to the verified end, then put the trees
        in place."""
        name = record.name
        strategy = trees.of_format(self, manifest.get("trees", trees.TAR))
        wanted = {s["name"]: s for s in manifest["snapshots"]}
        entries: dict[str, SnapshotRecord] = {}
        rootfs_seen = False
        while (part := reader.next_part()) is not None:
            kind, snapshot = part.get("kind"), part.get("snapshot")
            if snapshot is not None and snapshot not in wanted:
                raise TransferCorrupt(reason=f"a part for snapshot "
                                             f"{snapshot!r} the manifest "
                                             "does not list")
            if kind == "tree":
                if (rootfs_seen if snapshot is None
                        else snapshot in entries):
                    raise TransferCorrupt(
                        reason=f"tree {snapshot or 'rootfs'} twice")
                strategy.receive(reader, record, snapshot)
                if snapshot is None:
                    rootfs_seen = True
                else:
                    entries[snapshot] = _snapshot_entry(wanted[snapshot])
            elif kind == "live" and manifest.get("live"):
                state = livemove.dump_dir(self.manager, name)
                fsutil.make_dirs(state, mode=0o700)
                trees.unpack(self, reader, state, (0, 0), f"{name} (dump)")
            elif kind == "state":
                state = self.snapshots.state_dir(name, snapshot)
                fsutil.make_dirs(state, mode=0o700)
                trees.unpack(self, reader, state, (0, 0),
                             f"{name}/{snapshot}")
            else:
                raise TransferCorrupt(reason=f"an unknown part {kind!r}")
        if not rootfs_seen:
            raise TransferCorrupt(reason="it holds no rootfs")
        missing = sorted(set(wanted) - set(entries))
        if missing:
            raise TransferCorrupt(reason=f"snapshots {missing} are missing")
        order = [s["name"] for s in manifest["snapshots"]]
        strategy.finish(record, order)
        return [entries[s] for s in order]


class _Progressing(io.RawIOBase):
    def __init__(self, src: BinaryIO, progress: ByteProgress | None) -> None:
        self._src = src
        self._progress = progress
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size)
        self.count += len(data)
        if self._progress is not None and data:
            self._progress(self.count)
        return data


def _manifest(record: ContainerRecord,
              entries: list[SnapshotRecord]) -> dict[str, Any]:
    data = record.to_dict()
    return {"format": FORMAT, "name": record.name,
            "record": {key: data[key] for key in _RECORD_KEYS},
            "snapshots": [{"name": e.name, "created_at": e.created_at,
                           "stateful": e.stateful} for e in entries]}


def _check_manifest(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise TransferCorrupt(reason=f"its manifest is not format {FORMAT}")
    kept = value.get("record")
    if not isinstance(kept, dict) or set(_RECORD_KEYS) - set(kept):
        raise TransferCorrupt(reason="its manifest lacks record fields")
    shots = value.get("snapshots")
    if not isinstance(shots, list) or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str)
            for s in shots):
        raise TransferCorrupt(reason="its manifest's snapshots are not a "
                                     "list of named entries")
    for shot in shots:
        names.validate_snapshot_name(shot["name"])
    if len({s["name"] for s in shots}) != len(shots):
        raise TransferCorrupt(reason="its manifest names a snapshot twice")
    if not isinstance(kept["limits"], dict):
        raise TransferCorrupt(reason="its limits are not a mapping")
    if not isinstance(kept["image"], str):
        raise TransferCorrupt(reason="its image is not a fingerprint")
    return value


def _snapshot_entry(data: dict[str, Any]) -> SnapshotRecord:
    return SnapshotRecord(name=data["name"],
                          created_at=float(data.get("created_at") or 0),
                          stateful=bool(data.get("stateful")), phase=READY)


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "this host's storage pool is full"
    return str(exc)
