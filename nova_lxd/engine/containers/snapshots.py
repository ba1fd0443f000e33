"""Snapshots of containers: create, list, restore, delete, copy, export.

A snapshot of a running container is taken with the container frozen
(cgroup freezer) around the pool's snapshot, so its files are consistent
(btrfs: a read-only subvolume snapshot; dir: a full copy, reflinked
where the file system can); the container is thawed even when the
snapshot fails, and the time it was frozen is measured and returned.
A stateful snapshot also dumps the processes with CRIU (``criu``).

Metadata lives next to the container's record, in
``containers/<name>/snapshots.json``, written atomically; every change
is made under the container's lock. An operation first writes its
intent (a ``creating`` or ``deleting`` entry, or ``restoring``), so that
``recover`` can finish or undo what a SIGKILL interrupted: thaw a
container the dead process froze, remove a half-made snapshot, finish a
delete, let the pool finish or undo a restore and put its quota back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oslo_log import log as logging

from nova_lxd.engine import errors, fsutil, liblxc, limits, names, nics
from nova_lxd.engine.containers import (
    criu,
    power,
    records,
    snapshot_files,
    traffic,
)
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.images.store import Image
from nova_lxd.engine.nics import Nic

if TYPE_CHECKING:
    from nova_lxd.engine.containers.manager import ContainerManager

LOG = logging.getLogger(__name__)

META_FILE = "snapshots.json"
STATE_DIR = "snapshot-state"
CREATING = "creating"
READY = "ready"
DELETING = "deleting"

crash_hook: Callable[[str], None] | None = None
"""Tests set this to kill the process at a named point of an operation
(``frozen``, ``snapshotted``, ``stopped``, ``restored`` ...)."""


def _point(name: str) -> None:
    if crash_hook is not None:
        crash_hook(name)


@dataclasses.dataclass(frozen=True)
class SnapshotRecord:
    name: str
    created_at: float
    stateful: bool = False
    size_bytes: int | None = None
    """Bytes the snapshot refers to, where the pool measures it (btrfs:
    its qgroup's referenced bytes; dir: None)."""
    frozen_seconds: float | None = None
    """How long the container was frozen for it (None: it was not
    running, or was frozen already)."""
    duration_seconds: float | None = None
    """The whole snapshot, from freeze to thaw (or the copy alone)."""
    phase: str = READY
    froze: bool = False
    """The engine froze the container for it (recovery thaws it)."""

    def replace(self, **changes: Any) -> SnapshotRecord:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class _Meta:
    snapshots: dict[str, SnapshotRecord]
    restoring: dict[str, Any] | None = None
    frozen_for: str | None = None
    """Set while a copy keeps the container frozen (recovery thaws)."""

    def ready(self, name: str, snapshot: str) -> SnapshotRecord:
        entry = self.snapshots.get(snapshot)
        if entry is None or entry.phase != READY:
            raise errors.SnapshotNotFound(name=name, snapshot=snapshot)
        return entry


class Snapshots:
    """Snapshot operations on the containers of one manager."""

    def __init__(self, manager: ContainerManager, images: Any) -> None:
        self.manager = manager
        self.pool = manager.pool
        self.config = manager.config
        self.images = images

    # -- metadata ----------------------------------------------------------

    def _meta_path(self, name: str) -> Path:
        return self.manager.records.paths(name).directory / META_FILE

    def state_dir(self, name: str, snapshot: str) -> Path:
        """Where a stateful snapshot's process dump is."""
        return self._state_dir(name, snapshot)

    def _state_dir(self, name: str, snapshot: str) -> Path:
        return (self.manager.records.paths(name).directory / STATE_DIR
                / snapshot)

    def _load(self, name: str) -> _Meta:
        try:
            data = fsutil.read_json(self._meta_path(name))
        except FileNotFoundError:
            return _Meta(snapshots={})
        except ValueError as exc:
            raise errors.OperationFailed(
                action="read snapshots of", name=name,
                reason=f"{self._meta_path(name)} is corrupt ({exc})"
            ) from exc
        fields = {f.name for f in dataclasses.fields(SnapshotRecord)}
        entries = [SnapshotRecord(**{k: v for k, v in item.items()
                                     if k in fields})
                   for item in data.get("snapshots", ())]
        return _Meta(snapshots={e.name: e for e in entries},
                     restoring=data.get("restoring"),
                     frozen_for=data.get("frozen_for"))

    def _save(self, name: str, meta: _Meta) -> None:
        fsutil.write_json(self._meta_path(name), {
            "snapshots": [dataclasses.asdict(e)
                          for e in meta.snapshots.values()],
            "restoring": meta.restoring,
            "frozen_for": meta.frozen_for}, mode=0o600)

    # -- create ------------------------------------------------------------

    def create(self, name: str, snapshot: str, *,
               stateful: bool = False) -> SnapshotRecord:
        """Snapshot ``name`` as it is now; see the module docstring."""
        names.validate_snapshot_name(snapshot)
        with self.manager.locked(name) as record:
            meta = self._load(name)
            if (snapshot in meta.snapshots
                    or self.pool.snapshot_path(name, snapshot).exists()):
                raise errors.SnapshotExists(name=name, snapshot=snapshot)
            ct = self.manager.open(name)
            status = liblxc.state(ct)
            if stateful:
                if status != liblxc.RUNNING:
                    raise errors.InvalidState(
                        action="take a stateful snapshot of", name=name,
                        status=status.lower())
                criu.require(name, record.stateful)
            running = status == liblxc.RUNNING
            entry = SnapshotRecord(name=snapshot, created_at=time.time(),
                                   stateful=stateful, phase=CREATING,
                                   froze=running and not stateful)
            meta.snapshots[snapshot] = entry
            self._save(name, meta)
            _point("intent")
            try:
                entry = self._take(name, ct, entry, running)
            except BaseException:
                self._discard(name, snapshot)
                raise
            meta.snapshots[snapshot] = entry
            self._save(name, meta)
        LOG.info("Snapshot %s of %s taken in %.1f ms%s", snapshot, name,
                 entry.duration_seconds * 1000,
                 "" if entry.frozen_seconds is None else
                 f" (frozen {entry.frozen_seconds * 1000:.1f} ms)")
        return entry

    def _take(self, name: str, ct: Any, entry: SnapshotRecord,
              running: bool) -> SnapshotRecord:
        snapshot = entry.name
        if running:
            # Dirty data is written back before the freeze, not in it.
            snapshot_files.syncfs(self.manager.rootfs(name))
        start = time.monotonic()
        frozen = None
        if entry.stateful:
            self._take_stateful(name, ct, snapshot)
        elif running:
            with self._frozen(name, ct) as timer:
                _point("frozen")
                self.pool.create_snapshot(name, snapshot)
            frozen = timer[0]
        else:
            self.pool.create_snapshot(name, snapshot)
        duration = time.monotonic() - start
        _point("snapshotted")
        return entry.replace(phase=READY, frozen_seconds=frozen,
                             duration_seconds=duration, froze=False,
                             size_bytes=self._size(name, snapshot))

    def _take_stateful(self, name: str, ct: Any, snapshot: str) -> None:
        """Dump the processes (the container stops, so its files match
        the dump), snapshot the files, and restore the processes."""
        state = self._state_dir(name, snapshot)
        record = self.manager.get(name)
        criu.checkpoint(name, self.config.containers_dir, state, stop=True)
        try:
            self.pool.create_snapshot(name, snapshot)
        finally:
            try:
                criu.restore(name, self.config.containers_dir, state,
                             record.host_root)
            except errors.EngineError:
                LOG.exception("Could not restore the processes of %s; "
                              "starting it afresh", name)
                self._start(name, ct, record)

    @contextlib.contextmanager
    def _frozen(self, name: str, ct: Any) -> Iterator[list[float]]:
        """Freeze around the block, thawing whatever happens (an error
        in flight wins over a failed thaw, which is then logged); the
        list yielded gets the seconds from freeze to thaw."""
        timer: list[float] = []
        start = time.monotonic()
        power.freeze(name, ct)
        try:
            yield timer
        except BaseException as exc:
            try:
                self._thaw(name, ct)
            except errors.EngineError as thaw_exc:
                LOG.error("%s (after: %s)", thaw_exc, exc)
            raise
        else:
            self._thaw(name, ct)
        finally:
            timer.append(time.monotonic() - start)

    def _thaw(self, name: str, ct: Any) -> None:
        for _ in range(3):
            if liblxc.unfreeze(ct) or liblxc.state(ct) != liblxc.FROZEN:
                return
            time.sleep(0.05)
        raise errors.OperationFailed(
            action="thaw", name=name,
            reason="the cgroup freezer did not thaw it after a snapshot; "
                   "run unfreeze again")

    def _size(self, name: str, snapshot: str) -> int | None:
        try:
            return self.pool.snapshot_usage(name, snapshot)
        except errors.EngineError:
            return None

    def _discard(self, name: str, snapshot: str) -> None:
        """Remove what an unfinished snapshot left (lock held)."""
        self.pool.delete_snapshot(name, snapshot)
        fsutil.remove_tree(self._state_dir(name, snapshot))
        meta = self._load(name)
        meta.snapshots.pop(snapshot, None)
        self._save(name, meta)

    # -- queries -----------------------------------------------------------

    def list(self, name: str) -> list[SnapshotRecord]:
        """Usable snapshots of ``name``, oldest first."""
        self.manager.get(name)
        entries = [e for e in self._load(name).snapshots.values()
                   if e.phase == READY]
        return sorted(entries, key=lambda e: e.created_at)

    def get(self, name: str, snapshot: str) -> SnapshotRecord:
        names.validate_snapshot_name(snapshot)
        self.manager.get(name)
        return self._load(name).ready(name, snapshot)

    # -- restore -----------------------------------------------------------

    def restore(self, name: str, snapshot: str, *,
                timeout: float | None = None) -> None:
        """Make the rootfs what ``snapshot`` holds; a running container
        is shut down (``timeout``, then killed) and started again, a
        stopped one stays stopped."""
        names.validate_snapshot_name(snapshot)
        with self.manager.locked(name) as record:
            meta = self._load(name)
            entry = meta.ready(name, snapshot)
            if not self.pool.snapshot_path(name, snapshot).is_dir():
                raise errors.SnapshotNotFound(name=name, snapshot=snapshot)
            ct = self.manager.open(name)
            was_running = liblxc.state(ct) != liblxc.STOPPED
            meta.restoring = {"snapshot": snapshot,
                              "was_running": was_running}
            self._save(name, meta)
            _point("intent")
            if was_running:
                power.stop(name, ct, force=False, timeout=(
                    self.config.stop_timeout if timeout is None
                    else timeout))
            _point("stopped")
            try:
                self.pool.restore_snapshot(name, snapshot)
                _point("restored")
            except errors.EngineError:
                # The old rootfs (or the whole new one) is back in place:
                # the container runs again as it was, then we say why.
                self._settle_restore(record, meta)
                if was_running:
                    self._start(name, ct, record)
                raise
            self._settle_restore(record, meta)
            state = self._state_dir(name, snapshot)
            if was_running and entry.stateful and state.is_dir() \
                    and not criu.problem():
                criu.restore(name, self.config.containers_dir, state,
                             record.host_root)
            elif was_running:
                self._start(name, ct, record)
        LOG.info("Restored %s to snapshot %s", name, snapshot)

    def _settle_restore(self, record: ContainerRecord, meta: _Meta) -> None:
        self.pool.repair(record.name)
        self._reapply_quota(record)
        meta.restoring = None
        self._save(record.name, meta)

    def _start(self, name: str, ct: Any, record: ContainerRecord) -> None:
        power.start(name, ct, self.manager.records.paths(name),
                    lxc_start=self.config.lxc_start,
                    lxcpath=self.config.containers_dir, nics=record.nics)

    def _reapply_quota(self, record: ContainerRecord) -> None:
        if record.root_disk_enforced and record.root_disk_bytes:
            usage = self.pool.usage(record.name)
            if usage.quota_bytes != record.root_disk_bytes:
                self.pool.set_quota(record.name, record.root_disk_bytes)

    # -- delete ------------------------------------------------------------

    def delete(self, name: str, snapshot: str) -> None:
        names.validate_snapshot_name(snapshot)
        with self.manager.locked(name):
            meta = self._load(name)
            entry = meta.snapshots.get(snapshot)
            if entry is None:
                raise errors.SnapshotNotFound(name=name, snapshot=snapshot)
            meta.snapshots[snapshot] = entry.replace(phase=DELETING)
            self._save(name, meta)
            self._discard(name, snapshot)
        LOG.info("Deleted snapshot %s of %s", snapshot, name)

    # -- copy --------------------------------------------------------------

    def copy(self, source: str, target: str, *,
             snapshot: str | None = None, hostname: str | None = None,
             metadata: dict[str, str] | None = None,
             nic_specs: Iterable[Nic | dict[str, Any]] = ()
             ) -> ContainerRecord:
        """A new stopped container ``target`` with the files of
        ``source`` (frozen while copied if running) or of one of its
        snapshots, and its limits, privilege, nesting and root disk; a
        new id range (unless privileged), new ``metadata``, ``hostname``
        (default: its name) and ``nic_specs`` (default: none, as host
        veth names and MAC addresses must not be shared)."""
        manager = self.manager
        names.validate_container_name(target)
        if target == source:  # its lock is ours already
            raise errors.ContainerExists(name=target)
        if snapshot is not None:
            names.validate_snapshot_name(snapshot)
        if hostname is not None:
            names.validate_hostname(hostname)
        metadata = names.validate_metadata(metadata or {})
        nic_list = nics.validate_all(nic_specs)
        traffic.check_supported(nic_list)
        with manager.locked(source) as src:
            if snapshot is not None:
                self._load(source).ready(source, snapshot)
            parsed = limits.parse_limits(src.limits)
            limits.check_feasible(parsed, manager.host)
            with manager.claim(target) as (_lock, revert):
                record = manager._reserve(
                    target, src.image, src.privileged, dict(src.limits),
                    revert, shared=src.shared_idmap)
                record = record.replace(
                    hostname=hostname, metadata=metadata, nics=nic_list,
                    nesting=src.nesting, halt_signal=src.halt_signal)
                LOG.info("Copying container %s%s to %s", source,
                         f" (snapshot {snapshot})" if snapshot else "",
                         target)
                revert.add(lambda: self.pool.delete_volume(target))
                with self._frozen_unless(source, snapshot is not None,
                                         f"a copy to {target}"):
                    _point("copying")
                    rootfs = self.pool.copy_volume(source, target, snapshot)
                uid, gid = self._shift_copy(src, record, rootfs)
                record = manager._apply_root_disk(record,
                                                  src.root_disk_bytes)
                manager._write_hostname(rootfs, hostname or target, uid,
                                        gid)
                manager._write_lxc_config(record, parsed)
                record = record.replace(phase=records.READY)
                manager.records.save(record)
                revert.success()
        LOG.info("Copied container %s to %s", source, target)
        return record

    def frozen_while_read(self, name: str,
                          why: str) -> contextlib.AbstractContextManager:
        """Frozen around the block if running (lock held), so that what
        is read of its rootfs is consistent; recovery thaws it."""
        return self._frozen_unless(name, False, why)

    def adopt(self, name: str, entries: list[SnapshotRecord]) -> None:
        """Record snapshots whose files the pool received (lock held)."""
        meta = self._load(name)
        for entry in entries:
            meta.snapshots[entry.name] = entry.replace(
                size_bytes=self._size(name, entry.name))
        self._save(name, meta)

    @contextlib.contextmanager
    def _frozen_unless(self, name: str, skip: bool,
                       why: str) -> Iterator[None]:
        ct = self.manager.open(name)
        if skip or liblxc.state(ct) != liblxc.RUNNING:
            yield
            return
        snapshot_files.syncfs(self.manager.rootfs(name))
        self._mark_frozen(name, why)
        try:
            with self._frozen(name, ct):
                yield
        finally:
            self._mark_frozen(name, None)

    def _mark_frozen(self, name: str, why: str | None) -> None:
        meta = self._load(name)
        meta.frozen_for = why
        self._save(name, meta)

    def _shift_copy(self, src: ContainerRecord, dst: ContainerRecord,
                    rootfs: Path) -> tuple[int, int]:
        """Owners as ``dst`` needs them on disk; returns its root's
        host (uid, gid) on disk."""
        old = snapshot_files.disk_base(src)
        new = snapshot_files.disk_base(dst)
        if old != new:
            count = snapshot_files.shift_tree(
                rootfs, uid_from=old[0], uid_to=new[0], gid_from=old[1],
                gid_to=new[1], size=_idmap_size(src, dst))
            LOG.info("Shifted %d owners of %s from %s to %s", count,
                     dst.name, old, new)
        return new

    # -- export ------------------------------------------------------------

    def export(self, name: str, snapshot: str, *,
               aliases: tuple[str, ...] = (),
               properties: dict[str, Any] | None = None) -> Image:
        """The snapshot's files as a rootfs tarball (tar.zst, owners as
        the container sees them), imported into the image store so that
        containers can be created from it; streamed through a file."""
        names.validate_snapshot_name(snapshot)
        with self.images.scratch() as job:
            out = job / "rootfs.tar.zst"
            with self.manager.locked(name) as record:
                entry = self._load(name).ready(name, snapshot)
                base = snapshot_files.disk_base(record)
                snapshot_files.archive(
                    self.pool.snapshot_path(name, snapshot), out,
                    label=f"{name}/{snapshot}", uid_base=base[0],
                    gid_base=base[1],
                    size=record.idmap.size if record.idmap else 0)
            props = self._image_properties(record.image)
            props.update(properties or {})
            props.update(snapshot_of=name, snapshot=snapshot)
            image = self.images.import_tarball(
                out, aliases=aliases, properties=props, move=True,
                facts=True, origin={
                    "container": name, "snapshot": snapshot,
                    "snapshot_created_at": entry.created_at})
        LOG.info("Exported snapshot %s of %s as image %s", snapshot, name,
                 image.fingerprint[:12])
        return image

    def _image_properties(self, fingerprint: str) -> dict[str, Any]:
        try:
            return dict(self.images.get(fingerprint).properties)
        except errors.ImageNotFound:
            return {}

    # -- recovery ----------------------------------------------------------

    def recover(self, name: str) -> list[str]:
        """Finish or undo snapshot operations on ``name`` whose process
        died (skipped while another operation holds its lock); returns
        what was cleaned, for the log."""
        lock = self.manager.lock(name)
        if not lock.acquire(blocking=False):
            return []
        try:
            try:
                record = self.manager.records.load(name)
            except errors.EngineError:
                return []
            if record.phase != records.READY:
                return []
            return self._recover_locked(record)
        finally:
            lock.release()

    def _recover_locked(self, record: ContainerRecord) -> list[str]:
        name = record.name
        meta = self._load(name)
        cleaned = []
        for entry in list(meta.snapshots.values()):
            if entry.phase == READY:
                continue
            ct = self.manager.open(name)
            if entry.froze and liblxc.state(ct) == liblxc.FROZEN:
                LOG.warning("Thawing %s, frozen by a snapshot that was "
                            "interrupted", name)
                self._thaw(name, ct)
            self._discard(name, entry.name)
            cleaned.append(f"{name}/{entry.name} ({entry.phase})")
        meta = self._load(name)
        for orphan in self.pool.list_snapshots(name):
            if orphan not in meta.snapshots:
                self.pool.delete_snapshot(name, orphan)
                cleaned.append(f"{name}/{orphan} (no metadata)")
        if meta.frozen_for:
            ct = self.manager.open(name)
            if liblxc.state(ct) == liblxc.FROZEN:
                LOG.warning("Thawing %s, frozen for %s that was "
                            "interrupted", name, meta.frozen_for)
                self._thaw(name, ct)
            cleaned.append(f"{name} (thawed after {meta.frozen_for})")
            self._mark_frozen(name, None)
            meta = self._load(name)
        if meta.restoring:
            cleaned.append(f"{name} (restore of "
                           f"{meta.restoring.get('snapshot')} interrupted;"
                           f" left stopped)")
            self._settle_restore(record, meta)
        return cleaned

    def recover_all(self) -> list[str]:
        cleaned = []
        for name in self.manager.records.names():
            if self._meta_path(name).exists():
                cleaned += self.recover(name)
        return cleaned


def _idmap_size(*recs: ContainerRecord) -> int:
    return max((r.idmap.size for r in recs if r.idmap), default=0)
