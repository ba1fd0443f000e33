"""Containers that exist: create, delete, look up, recover after a crash.

Every operation on a container holds its file lock, so engines in several
processes can share one root. A create or delete first writes its intent
into the record (``creating``/``deleting``); if the process dies, the lock
is released by the kernel and ``recover()`` removes what was left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from oslo_log import log as logging

from nova_lxd.engine import (
    errors,
    fsutil,
    idmap,
    liblxc,
    limits,
    names,
    nics,
)
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.containers import (
    init_system,
    records,
    rename,
    traffic,
)
from nova_lxd.engine.containers import update as live
from nova_lxd.engine.containers.files import RootfsFile, write_files
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.host import HostInfo
from nova_lxd.engine.images.extract import extract_rootfs
from nova_lxd.engine.images.store import ImageStore
from nova_lxd.engine.locks import FileLock
from nova_lxd.engine.nics import Nic
from nova_lxd.engine.render import config as render_config
from nova_lxd.engine.render.limits import render_limits
from nova_lxd.engine.render.security import render_security
from nova_lxd.engine.revert import Reverter
from nova_lxd.engine.security import seccomp
from nova_lxd.engine.storage import StoragePool

LOG = logging.getLogger(__name__)


class ContainerManager:
    def __init__(self, config: EngineConfig, images: ImageStore,
                 host: HostInfo, pool: StoragePool) -> None:
        self.config = config
        self.images = images
        self.host = host
        self.pool = pool
        self.records = records.RecordStore(config.containers_dir)
        fsutil.make_dirs(config.containers_dir)
        fsutil.make_dirs(config.locks_dir, mode=0o700)

    def rootfs(self, name: str) -> Path:
        return self.pool.volume_path(name)

    # -- locking -----------------------------------------------------------

    def records_lock(self) -> FileLock:
        """Held while a record is added: id ranges are allocated from the
        records, and image pruning reads which images are in use."""
        return FileLock(self.config.locks_dir / "idmap.lock",
                        timeout=self.config.lock_timeout, what="records")

    def lock(self, name: str) -> FileLock:
        return FileLock(self.config.locks_dir / f"container-{name}.lock",
                        timeout=self.config.lock_timeout, what=name)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[ContainerRecord]:
        """Hold the container's lock and yield its (usable) record."""
        names.validate_container_name(name)
        lock = self.lock(name)
        with lock:
            record = self._load_or_forget(name, lock)
            if record.phase != records.READY:
                raise errors.ContainerNotFound(name=name)
            yield record

    def _load_or_forget(self, name: str, lock: FileLock) -> ContainerRecord:
        """The record; for a container that does not exist, the lock file
        just made for the lookup is removed again on release."""
        try:
            return self.records.load(name)
        except errors.ContainerNotFound:
            lock.unlink_on_release = not self.records.paths(
                name).directory.exists()
            raise

    def open(self, name: str) -> Any:
        return liblxc.open_container(name, self.config.containers_dir)

    # -- queries -----------------------------------------------------------

    def get(self, name: str) -> ContainerRecord:
        names.validate_container_name(name)
        record = self.records.load(name)
        if record.phase != records.READY:
            raise errors.ContainerNotFound(name=name)
        return record

    def list(self) -> list[ContainerRecord]:
        return [r for r in self.records.all() if r.phase == records.READY]

    def image_users(self, fingerprint: str) -> list[str]:
        return [r.name for r in self.records.all()
                if r.image == fingerprint]

    # -- create ------------------------------------------------------------

    def create(self, name: str, image_ref: str, *,
               limit_keys: dict[str, Any] | None = None,
               privileged: bool = False, hostname: str | None = None,
               metadata: dict[str, str] | None = None,
               nic_specs: Iterable[Nic | dict[str, Any]] = (),
               files: Iterable[RootfsFile] = (), nesting: bool = False,
               isolated_idmap: bool = True,
               root_disk: int | None = None,
               stateful: bool = False) -> ContainerRecord:
        """Create a stopped container from an image; all or nothing.
        ``root_disk`` (bytes) is enforced where the pool can (the record
        says whether it was).
        ``files`` are written into the new rootfs (seeds for cloud-init).
        ``nesting`` lets it run containers of its own; ``isolated_idmap``
        False puts it in the one id range shared by such containers;
        ``stateful`` makes it one CRIU can dump and restore (no console
        log)."""
        names.validate_container_name(name)
        if hostname is not None:
            names.validate_hostname(hostname)
        metadata = names.validate_metadata(metadata or {})
        nic_list = nics.validate_all(nic_specs)
        traffic.check_supported(nic_list)
        files = [f.validate() for f in files]
        parsed = limits.parse_limits(limit_keys or {})
        limits.check_feasible(parsed, self.host)
        image = self.images.get(image_ref)
        with self.claim(name) as (_lock, revert):
            record = self._reserve(name, image.fingerprint, privileged,
                                   dict(limit_keys or {}), revert,
                                   shared=not isolated_idmap,
                                   stateful=stateful)
            record = record.replace(hostname=hostname, metadata=metadata,
                                    nics=nic_list, nesting=nesting,
                                    stateful=stateful)
            # Pruning may have removed the image before our record said
            # it is in use; from here on it cannot.
            self.images.get(image.fingerprint)
            LOG.info("Creating container %s from image %s", name,
                     image.fingerprint[:12])
            shift, gshift = _shifts(record)
            revert.add(lambda: self.pool.delete_volume(name))
            rootfs = self._unpack(name, image.fingerprint, record)
            self.images.touch(image.fingerprint)
            record = self._apply_root_disk(record, root_disk)
            self._write_hostname(rootfs, hostname or name, shift, gshift)
            write_files(record, rootfs, files)
            record = record.replace(
                halt_signal=init_system.halt_signal(rootfs))
            self._write_lxc_config(record, parsed)
            record = record.replace(phase=records.READY)
            self.records.save(record)
            revert.success()
        LOG.info("Created container %s", name)
        return record

    @contextlib.contextmanager
    def claim(self, name: str) -> Iterator[tuple[FileLock, Reverter]]:
        """The lock of a container about to be made, and the Reverter
        that undoes its making: debris of an interrupted make is cleaned
        first, an existing container refused, and a failed make leaves
        not even its lock file (the undo step registered first, so it
        runs last)."""
        paths = self.records.paths(name)
        lock = self.lock(name)
        with lock, Reverter() as revert:
            revert.add(lambda: setattr(lock, "unlink_on_release",
                                       not paths.directory.exists()))
            if paths.directory.exists():
                self._recover_one(name, held=lock)
                if paths.directory.exists():
                    raise errors.ContainerExists(name=name)
            yield lock, revert

    def _unpack(self, volume: str, fingerprint: str,
                record: ContainerRecord) -> Path:
        """A new pool volume holding the image, owners shifted into the
        record's id map when it has no idmapped mount."""
        shift, gshift = _shifts(record)
        tarball = self.images.tarball_path(fingerprint)
        return self.pool.create_volume(
            volume, fingerprint,
            lambda dest: extract_rootfs(
                tarball, dest, max_bytes=self.config.max_unpacked_size,
                max_members=self.config.max_image_members,
                uid_shift=shift, gid_shift=gshift),
            shareable=shift == 0 and gshift == 0)

    def _apply_root_disk(self, record: ContainerRecord,
                         size: int | None) -> ContainerRecord:
        if size is not None and (not isinstance(size, int) or size <= 0):
            raise errors.InvalidConfig(key="root_disk",
                                       reason="a size in bytes above 0")
        enforced = False
        if size is not None and self.pool.enforces_quota:
            self.pool.set_quota(record.name, size)
            enforced = True
        elif size is not None:
            LOG.info("Root disk size of %s not enforced: the %s pool "
                     "has no quotas", record.name, self.pool.driver)
        return record.replace(root_disk_bytes=size,
                              root_disk_enforced=enforced)

    def _reserve(self, name: str, fingerprint: str, privileged: bool,
                 limit_keys: dict[str, Any], revert: Reverter, *,
                 shared: bool = False, stateful: bool = False,
                 mapping: idmap.Idmap | None = None) -> ContainerRecord:
        """Allocate the id map and write the ``creating`` record, under the
        id-map lock so that two creates never pick the same range. A
        shared map is the one other shared containers use, else a new
        range that isolated containers then avoid like any other; a given
        ``mapping`` (a live move keeps its range) only if free here."""
        paths = self.records.paths(name)
        if privileged:
            mapping = None
        with self.records_lock():
            if mapping is not None:
                self._claim_idmap(name, mapping)
            elif not privileged and shared:
                mapping = next((r.idmap for r in self.records.all()
                                if r.shared_idmap and r.idmap), None)
            if not privileged and mapping is None:
                mapping = self._allocate_idmap()
            fsutil.make_dirs(paths.directory, mode=0o711)
            revert.add(lambda: fsutil.remove_tree(paths.directory))
            record = ContainerRecord(
                name=name, image=fingerprint, privileged=privileged,
                idmap=mapping,
                # liblxc's CRIU restore bind-mounts the rootfs without
                # the id map: stateful containers are chown-shifted.
                idmapped_mount=(not privileged and not stateful
                                and self._use_idmapped_mounts()),
                limits=limit_keys, shared_idmap=shared and not privileged)
            self.records.save(record)
        return record

    def _claim_idmap(self, name: str, mapping: idmap.Idmap) -> None:
        """Refuse ``mapping`` (a container that must keep the id range it
        had elsewhere) unless it is free here (records lock held)."""
        cfg = self.config
        reason = idmap.claim(
            mapping,
            idmap.read_subordinate_ranges(cfg.subuid_file, cfg.idmap_user),
            idmap.read_subordinate_ranges(cfg.subgid_file, cfg.idmap_user),
            [r.idmap for r in self.records.all() if r.idmap])
        if reason:
            raise errors.HostError(reason=f"{name} must keep its id range "
                                          f"{mapping.uid_base}+"
                                          f"{mapping.size}, but {reason}")

    def _allocate_idmap(self) -> idmap.Idmap:
        cfg = self.config
        uid_ranges = idmap.read_subordinate_ranges(cfg.subuid_file,
                                                   cfg.idmap_user)
        gid_ranges = idmap.read_subordinate_ranges(cfg.subgid_file,
                                                   cfg.idmap_user)
        used = [r.idmap for r in self.records.all() if r.idmap]
        return idmap.allocate(uid_ranges, gid_ranges, used, cfg.idmap_size,
                              user=cfg.idmap_user,
                              subuid_path=cfg.subuid_file,
                              subgid_path=cfg.subgid_file)

    def check_idmap(self) -> None:
        """Raise the HostError a create would meet for want of ids."""
        with self.records_lock():
            self._allocate_idmap()

    def _use_idmapped_mounts(self) -> bool:
        mode = self.config.idmapped_mounts
        if mode == "always":
            return True
        if mode == "never":
            return False
        return self.host.idmapped_mounts

    @staticmethod
    def _write_hostname(rootfs: Path, name: str, uid: int, gid: int) -> None:
        try:
            fsutil.write_in_rootfs(rootfs, "etc/hostname",
                                   f"{name}\n".encode(), uid=uid, gid=gid)
        except OSError as exc:
            LOG.warning("Could not write /etc/hostname of %s (%s); the "
                        "image's /etc is not a plain directory", name, exc)

    def _write_lxc_config(self, record: ContainerRecord,
                          parsed: limits.Limits) -> None:
        paths = self.records.paths(record.name)
        fsutil.write_atomic(paths.seccomp_profile,
                            seccomp.profile_text().encode(), mode=0o644)
        rootfs, binds = self.rootfs(record.name), ()
        if record.rescue_image:
            binds = ((rootfs, records.RESCUE_MOUNT),)
            rootfs = self.pool.volume_path(
                records.rescue_volume(record.name))
        spec = render_config.ConfigSpec(
            name=record.name, rootfs=rootfs, binds=binds,
            console_log=paths.console_log, lxc_log=paths.lxc_log,
            idmap=record.idmap, idmapped_mount=record.idmapped_mount,
            halt_signal=record.halt_signal,
            console_log_size=self.config.console_log_size,
            log_level=self.config.log_level,
            devices_cgroup=self.host.cgroups.devices,
            hostname=record.hostname, nics=record.nics,
            nesting=record.nesting, console=not record.stateful)
        pairs = render_config.render_base(spec)
        pairs += render_security(privileged=record.privileged,
                                 nesting=record.nesting,
                                 apparmor=self.host.apparmor,
                                 seccomp_profile_path=paths.seccomp_profile)
        pairs += render_limits(parsed, self.host.cgroups, self.host)
        hook = traffic.hook_script(record.nics)
        if hook is not None:
            fsutil.write_atomic(paths.traffic_hook, hook.encode(),
                                mode=0o755)
            pairs.append(("lxc.hook.start-host", str(paths.traffic_hook)))
        fsutil.write_atomic(paths.lxc_config,
                            render_config.to_text(pairs).encode(),
                            mode=0o644)

    # -- changes -----------------------------------------------------------

    def update(self, name: str, *, limit_keys: dict[str, Any] | None = None,
               root_disk: int | None = None) -> ContainerRecord:
        """New limits (applied to the running container too, where the
        kernel allows) and/or a new root disk size (btrfs refuses one
        below what the rootfs uses)."""
        with self.locked(name) as record:
            keys = dict(record.limits if limit_keys is None else limit_keys)
            parsed = limits.parse_limits(keys)
            limits.check_feasible(parsed, self.host)
            ct = self.open(name)
            if liblxc.state(ct) != liblxc.STOPPED:
                old = live.cgroup_items(render_limits(
                    limits.parse_limits(record.limits), self.host.cgroups,
                    self.host))
                new = live.cgroup_items(render_limits(
                    parsed, self.host.cgroups, self.host))
                live.apply(ct, name,
                             live.changes(old, new,
                                            self.host.online_cpus),
                             live.changes(new, old,
                                            self.host.online_cpus))
            if root_disk is not None:
                record = self._apply_root_disk(record, root_disk)
            record = record.replace(limits=keys)
            self._write_lxc_config(record, parsed)
            self.records.save(record)
        LOG.info("Updated container %s", name)
        return record

    def rescue(self, name: str, image_ref: str) -> ContainerRecord:
        """Make the stopped container boot ``image_ref`` with its own
        rootfs at ``RESCUE_MOUNT``; its rootfs is not otherwise touched."""
        image = self.images.get(image_ref)
        with self.locked(name) as record:
            self._require_stopped(name, "rescue")
            volume = records.rescue_volume(name)
            shift, gshift = _shifts(record)
            with Reverter() as revert:
                revert.add(lambda: self.pool.delete_volume(volume))
                rootfs = self._unpack(volume, image.fingerprint, record)
                self._write_hostname(rootfs, record.hostname or name,
                                     shift, gshift)
                record = record.replace(
                    rescue_image=image.fingerprint,
                    halt_signal=init_system.halt_signal(rootfs))
                self._write_lxc_config(record,
                                       limits.parse_limits(record.limits))
                self.records.save(record)
                revert.success()
        LOG.info("Container %s rescued with image %s", name,
                 image.fingerprint[:12])
        return record

    def unrescue(self, name: str) -> ContainerRecord:
        """Back to its own rootfs; the rescue rootfs is deleted."""
        with self.locked(name) as record:
            self._require_stopped(name, "unrescue")
            record = record.replace(
                rescue_image=None,
                halt_signal=init_system.halt_signal(self.rootfs(name)))
            self._write_lxc_config(record,
                                   limits.parse_limits(record.limits))
            self.records.save(record)
            self.pool.delete_volume(records.rescue_volume(name))
        return record

    def _require_stopped(self, name: str, action: str) -> None:
        status = liblxc.state(self.open(name))
        if status != liblxc.STOPPED:
            raise errors.InvalidState(action=action, name=name,
                                      status=status.lower())

    def rename(self, old: str, new: str) -> ContainerRecord:
        """Rename a stopped container (see ``containers.rename``)."""
        return rename.rename(self, old, new)

    # -- delete ------------------------------------------------------------

    def delete(self, name: str, *, force: bool = False) -> None:
        """Delete a stopped container (``force`` kills a running one)."""
        names.validate_container_name(name)
        lock = self.lock(name)
        with lock:
            record = self._load_or_forget(name, lock)
            ct = self.open(name)
            status = liblxc.state(ct)
            if status != liblxc.STOPPED:
                if not force:
                    raise errors.InvalidState(action="delete", name=name,
                                              status=status.lower())
                liblxc.kill(ct)
            self.records.save(record.replace(phase=records.DELETING))
            self.pool.delete_volume(records.rescue_volume(name))
            self.pool.delete_volume(name)
            fsutil.remove_tree(self.records.paths(name).directory)
            lock.unlink_on_release = True
        LOG.info("Deleted container %s", name)

    # -- recovery ----------------------------------------------------------

    def recover(self) -> list[str]:
        """Finish or undo creates and deletes whose process died; returns
        the names cleaned up."""
        cleaned = []
        if not self.config.containers_dir.is_dir():
            return cleaned
        for entry in sorted(self.config.containers_dir.iterdir()):
            if entry.is_dir() and self._recover_one(entry.name):
                cleaned.append(entry.name)
        return cleaned

    def _recover_one(self, name: str, held: FileLock | None = None) -> bool:
        """Clean ``name`` up if it is debris (``held``: the caller already
        holds its lock)."""
        paths = self.records.paths(name)
        lock = held or self.lock(name)
        if held is None and not lock.acquire(blocking=False):
            return False  # an operation is under way
        try:
            try:
                record = self.records.load(name)
            except errors.ContainerNotFound:
                record = None
            except errors.OperationFailed:
                LOG.error("Container %s has a corrupt record; left alone "
                          "for an operator to inspect", name)
                return False
            if record is not None and record.phase == records.READY:
                self.pool.repair(name)
                return False
            if record is not None and record.phase == records.RENAMING:
                LOG.warning("Settled interrupted rename: %s",
                            rename.recover_rename(self, name, record))
                return False
            ct = self.open(name)
            if liblxc.state(ct) != liblxc.STOPPED:
                liblxc.kill(ct)
            LOG.warning("Removing %s container %s left by an interrupted "
                        "operation", record.phase if record else "partial",
                        name)
            self.pool.delete_volume(records.rescue_volume(name))
            self.pool.delete_volume(name)
            fsutil.remove_tree(paths.directory)
            lock.unlink_on_release = held is None
            return True
        finally:
            if held is None:
                lock.release(unlink=lock.unlink_on_release)


def _shifts(record: ContainerRecord) -> tuple[int, int]:
    """How far owners on disk are moved from the container's ids: the
    id map's bases for a chown-shifted rootfs, else nothing."""
    if record.idmap is None or record.idmapped_mount:
        return 0, 0
    return record.idmap.uid_base, record.idmap.gid_base
