"""The engine's public face: images and containers on one host.

    engine = Engine(EngineConfig(root=Path("/var/lib/nova-lxd")))
    image = engine.import_image(Path("busybox.tar.gz"), aliases=["bb"])
    engine.launch("c1", "bb", limits={"limits.memory": "256MiB"})
    engine.execute("c1", ["cat", "/etc/hostname"]).stdout
    engine.delete("c1", force=True)

Every method is safe to call from several processes sharing one root: the
state lives on disk and in liblxc, never only in this object.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from oslo_log import log as logging

from nova_lxd.engine import errors, fsutil, host, liblxc, storage
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.containers import (
    console,
    criu,
    exec_logs,
    execute,
    power,
)
from nova_lxd.engine.containers.files import (
    DIR_MODE,
    RootfsEntry,
    RootfsFile,
    delete_path,
    make_directory,
    make_symlink,
    read_entry,
    write_files,
)
from nova_lxd.engine.containers.manager import ContainerManager
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.containers.snapshots import SnapshotRecord, Snapshots
from nova_lxd.engine.containers.state import ContainerState, read_state
from nova_lxd.engine.images import housekeeping, loop
from nova_lxd.engine.images.pipeline import ImageImporter
from nova_lxd.engine.images.progress import LogProgress, Progress
from nova_lxd.engine.images.store import Image, ImageStore
from nova_lxd.engine.nics import Nic
from nova_lxd.engine.transfer import live as livemove
from nova_lxd.engine.transfer.container import (
    ByteProgress,
    Transfers,
    TransferSummary,
)

LOG = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: EngineConfig | None = None, *,
                 recover: bool = True) -> None:
        self.config = config or EngineConfig()
        fsutil.make_dirs(self.config.root, mode=0o711)
        fsutil.make_dirs(self.config.containers_dir, mode=0o711)
        self.images = ImageStore(
            self.config.images_dir, lock_timeout=self.config.lock_timeout,
            max_bytes=self.config.max_unpacked_size,
            max_members=self.config.max_image_members)
        self.importer = ImageImporter(self.images, self.config)
        self.pool = storage.open_pool(self.config)
        # Mounts a loop-backed pool again after a reboot.
        self.pool.ensure_ready()
        self.containers = ContainerManager(self.config, self.images,
                                           self.host, self.pool)
        if recover:
            # Loop devices of conversions killed mid-way (the kernel
            # normally detaches them with the dead mount namespace).
            loop.detach_stale_loops(self.config.images_dir)
            cleaned = self.containers.recover()
            cleaned += self.snapshots.recover_all()
            if cleaned:
                LOG.warning("Recovered after interrupted operations: "
                            "removed %s", ", ".join(cleaned))

    @functools.cached_property
    def host(self) -> host.HostInfo:
        info = host.probe_host(self.config.containers_dir)
        if not info.apparmor:
            host.warn_no_apparmor()
        return info

    def host_problems(self) -> list[str]:
        """What keeps this host from running the engine's default
        (unprivileged) containers, each said so an operator can fix it;
        empty when all is well. Services check this at start-up."""
        problems = []
        if not shutil.which(self.config.lxc_start):
            problems.append(f"{self.config.lxc_start} is missing: install "
                            f"Debian's lxc package")
        try:
            self.containers.check_idmap()
        except errors.HostError as exc:
            problems.append(str(exc))
        if self.host.cgroups.freezer is None:
            problems.append("no cgroup freezer: pause and suspend need it")
        return problems

    # -- images ------------------------------------------------------------

    def import_image(self, source: Path, *, aliases: tuple[str, ...] = (),
                     properties: dict[str, Any] | None = None,
                     origin: dict[str, Any] | None = None,
                     disk_format: str | None = None,
                     container_format: str | None = None,
                     progress: Progress | None = None) -> Image:
        """Import a root tarball, an LXD unified tarball or a disk image
        (detected from its content, checked against the declared Glance
        formats). With ``origin`` (say ``{"glance_id": ..., "checksum":
        ...}``) an image converted before from the same origin is reused.
        """
        return self.importer.import_file(
            Path(source), aliases=tuple(aliases), properties=properties,
            origin=origin, disk_format=disk_format,
            container_format=container_format,
            progress=progress or LogProgress(Path(source).name))

    def import_split_image(self, metadata: Path, rootfs: Path, *,
                           aliases: tuple[str, ...] = (),
                           properties: dict[str, Any] | None = None
                           ) -> Image:
        """An LXD split image: a metadata tarball (metadata.yaml and
        templates/) and a root tarball. Its fingerprint is LXD's, the
        sha256 of metadata then rootfs; the store keeps the rootfs
        tarball, metadata.yaml as properties (as for unified tarballs)."""
        return self.importer.import_split(
            Path(metadata), Path(rootfs), aliases=tuple(aliases),
            properties=properties)

    def prune_images(self, max_bytes: int | None = None) -> list[Image]:
        """Remove least recently used images that no container uses until
        the store holds at most ``max_bytes`` (default from the config;
        0 = keep all). For Nova's ``manage_image_cache``."""
        limit = (self.config.image_cache_max_size if max_bytes is None
                 else max_bytes)
        if limit <= 0:
            return []
        with self.containers.records_lock():  # no create slips between
            in_use = {r.image for r in self.containers.records.all()}
            removed = housekeeping.evict(self.images, limit, in_use=in_use)
            for image in removed:
                self.pool.delete_image(image.fingerprint)
            return removed

    def find_image(self, origin: dict[str, Any]) -> Image | None:
        """The newest image imported from ``origin`` (all keys match)."""
        return self.images.find_by_origin(**origin)

    def list_images(self) -> list[Image]:
        return self.images.list()

    def get_image(self, ref: str) -> Image:
        return self.images.get(ref)

    def delete_image(self, ref: str) -> None:
        image = self.images.get(ref)
        users = self.containers.image_users(image.fingerprint)
        if users:
            raise errors.ImageInUse(fingerprint=image.fingerprint[:12],
                                    users=", ".join(users))
        self.images.delete(image.fingerprint)
        self.pool.delete_image(image.fingerprint)

    def export_image(self, ref: str, dest: Path, *,
                     owner: tuple[int, int] | None = None) -> Image:
        """Copy an image's tarball to the new file ``dest`` (never over an
        existing file or through a symlink), owned by ``owner`` (uid,
        gid) so that an unprivileged service can read it."""
        image = self.images.get(ref)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                     | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with open(self.images.tarball_path(image.fingerprint),
                      "rb") as src, os.fdopen(fd, "wb") as out:
                fd = -1
                if owner is not None:
                    os.fchown(out.fileno(), *owner)
                shutil.copyfileobj(src, out, 1024 * 1024)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            Path(dest).unlink(missing_ok=True)
            raise
        return image

    def add_image_alias(self, alias: str, ref: str) -> None:
        self.images.add_alias(alias, ref)

    def remove_image_alias(self, alias: str) -> None:
        self.images.remove_alias(alias)

    # -- containers --------------------------------------------------------

    def create(self, name: str, image: str, *,
               limits: dict[str, Any] | None = None,
               privileged: bool = False, hostname: str | None = None,
               metadata: dict[str, str] | None = None,
               nics: Iterable[Nic | dict[str, Any]] = (),
               files: Iterable[RootfsFile] = (), nesting: bool = False,
               isolated_idmap: bool = True,
               root_disk: int | None = None,
               stateful: bool = False) -> ContainerRecord:
        """A stopped container from ``image``: LXD-style ``limits`` keys,
        veth ``nics``, ``files`` written into its rootfs, and the
        caller's ``metadata`` kept in its record; ``root_disk`` bytes,
        enforced where the storage pool can; ``stateful``: CRIU can dump
        it (stateful snapshots, live moves; no console log)."""
        return self.containers.create(
            name, image, limit_keys=limits, privileged=privileged,
            hostname=hostname, metadata=metadata, nic_specs=nics,
            files=files, nesting=nesting, isolated_idmap=isolated_idmap,
            root_disk=root_disk, stateful=stateful)

    def launch(self, name: str, image: str, **kwargs: Any) -> ContainerState:
        """Create and start; a start failure deletes the new container."""
        self.create(name, image, **kwargs)
        try:
            self.start(name)
        except BaseException:
            self.containers.delete(name, force=True)
            raise
        return self.state(name)

    def update(self, name: str, *, limits: dict[str, Any] | None = None,
               root_disk: int | None = None) -> ContainerRecord:
        """New limits (live where the kernel allows) and/or root disk
        size; ``None`` keeps the current value."""
        return self.containers.update(name, limit_keys=limits,
                                      root_disk=root_disk)

    def rescue(self, name: str, image: str) -> ContainerRecord:
        """The stopped container will boot ``image`` with its own rootfs
        mounted at /mnt/rescue (start it yourself)."""
        return self.containers.rescue(name, image)

    def unrescue(self, name: str) -> ContainerRecord:
        """The stopped, rescued container boots its own rootfs again."""
        return self.containers.unrescue(name)

    def storage_marker_create(self) -> str:
        """A token naming a new file in the engine's root: another host
        that sees it shares this host's storage."""
        directory = self.config.root / "markers"
        fsutil.make_dirs(directory, mode=0o700)
        token = uuid.uuid4().hex
        (directory / token).touch(mode=0o600)
        return token

    def storage_marker_exists(self, token: str) -> bool:
        return _marker(self.config.root, token).exists()

    def storage_marker_remove(self, token: str) -> None:
        _marker(self.config.root, token).unlink(missing_ok=True)

    def get(self, name: str) -> ContainerRecord:
        return self.containers.get(name)

    def list(self) -> list[ContainerRecord]:
        return self.containers.list()

    def status(self, name: str) -> str:
        """liblxc's state alone (RUNNING, STOPPED, FROZEN...): no cgroup
        or interface reads, for callers that poll often."""
        self.containers.get(name)
        return liblxc.state(self.containers.open(name))

    def state(self, name: str) -> ContainerState:
        self.containers.get(name)
        return read_state(name, self.containers.open(name))

    def start(self, name: str) -> None:
        """Start; nics with ingress/egress limits get them on their new
        host veths (TrafficLimitFailed stops the container again)."""
        with self.containers.locked(name) as record:
            power.start(name, self.containers.open(name),
                        self.containers.records.paths(name),
                        lxc_start=self.config.lxc_start,
                        lxcpath=self.config.containers_dir,
                        nics=record.nics)

    def stop(self, name: str, *, timeout: float | None = None,
             force: bool = False) -> bool:
        """Clean shutdown within ``timeout`` (default from the config),
        then kill; ``force`` kills at once. True if it halted cleanly."""
        with self.containers.locked(name):
            return power.stop(name, self.containers.open(name),
                              timeout=self._timeout(timeout), force=force)

    def restart(self, name: str, *, timeout: float | None = None,
                force: bool = False) -> None:
        with self.containers.locked(name) as record:
            ct = self.containers.open(name)
            if liblxc.state(ct) != liblxc.STOPPED:
                power.stop(name, ct, timeout=self._timeout(timeout),
                           force=force)
            power.start(name, ct, self.containers.records.paths(name),
                        lxc_start=self.config.lxc_start,
                        lxcpath=self.config.containers_dir,
                        nics=record.nics)

    def freeze(self, name: str) -> None:
        with self.containers.locked(name):
            power.freeze(name, self.containers.open(name))

    def unfreeze(self, name: str) -> None:
        with self.containers.locked(name):
            power.unfreeze(name, self.containers.open(name))

    def delete(self, name: str, *, force: bool = False) -> None:
        self.containers.delete(name, force=force)

    def rename(self, old: str, new: str) -> ContainerRecord:
        """Rename a stopped container: its directory, pool volume,
        snapshots and lxc config follow (as LXD, a running one is
        refused); an interrupted rename is undone or finished by
        ``recover``."""
        return self.containers.rename(old, new)

    def execute(self, name: str, command: list[str], **kwargs: Any
                ) -> execute.ExecResult:
        """Run ``command`` inside; see ``containers.execute.run``."""
        self.containers.get(name)
        return execute.run(name, self.containers.open(name), command,
                           **kwargs)

    def push_files(self, name: str, files: Iterable[RootfsFile]) -> None:
        """Write files into a container's rootfs (running or not)."""
        with self.containers.locked(name) as record:
            write_files(record, self.containers.rootfs(name),
                        [f.validate() for f in files])

    def make_directory(self, name: str, path: str, *, mode: int = DIR_MODE,
                       uid: int = 0, gid: int = 0) -> None:
        """Create one directory in a container's rootfs (an existing one
        is fine); ``uid:gid`` as the container sees them."""
        with self.containers.locked(name) as record:
            make_directory(record, self.containers.rootfs(name), path,
                           mode=mode, uid=uid, gid=gid)

    def make_symlink(self, name: str, path: str, target: str, *,
                     uid: int = 0, gid: int = 0) -> None:
        """Create a symlink in a container's rootfs, never following it."""
        with self.containers.locked(name) as record:
            make_symlink(record, self.containers.rootfs(name), path, target,
                         uid=uid, gid=gid)

    def delete_file(self, name: str, path: str) -> None:
        """Remove a file, symlink or empty directory of a container."""
        with self.containers.locked(name) as record:
            delete_path(record, self.containers.rootfs(name), path)

    def attach(self, name: str, argv: list[str], *,
               env: dict[str, str] | None = None, cwd: str = "/",
               uid: int = 0, gid: int = 0, stdin: int, stdout: int,
               stderr: int) -> int:
        """Start a command in the running container on the caller's file
        descriptors (a pty or pipes) and return its pid, for callers that
        stream (the daemon's exec); ``execute`` collects output instead."""
        self.containers.get(name)
        return execute.start(name, self.containers.open(name), argv,
                             env=env, cwd=cwd, uid=uid, gid=gid,
                             stdin=stdin, stdout=stdout, stderr=stderr)

    def pull_file(self, name: str, path: str) -> RootfsEntry:
        """A file, directory listing or symlink target of the container,
        read without following symlinks out of its rootfs."""
        return read_entry(self.get(name), self.containers.rootfs(name),
                          path)

    def console_log(self, name: str, max_bytes: int = 1024 * 1024) -> str:
        self.containers.get(name)
        return console.read_console_log(
            self.containers.records.paths(name).console_log, max_bytes)

    def console_log_clear(self, name: str) -> None:
        self.containers.get(name)
        console.clear_console_log(
            self.containers.records.paths(name).console_log)

    def console_attach(self, name: str, *, stdin: int, stdout: int,
                       stderr: int) -> int:
        """Attach the running container's /dev/console to the caller's
        fds (a pty) and return the pid of the attachment: killing it
        detaches; the console log keeps being written meanwhile."""
        if self.containers.get(name).stateful:
            raise errors.InvalidState(
                action="attach to the console of", name=name,
                status="stateful (no console device: CRIU could not "
                       "restore one)")
        return console.attach(
            name, self.containers.open(name),
            lxcpath=self.config.containers_dir,
            tool=console.console_tool(self.config.lxc_start),
            stdin=stdin, stdout=stdout, stderr=stderr)

    def execute_recorded(self, name: str, command: list[str],
                         **kwargs: Any
                         ) -> tuple[execute.ExecResult, tuple[str, str]]:
        """``execute``, its stdout and stderr kept as log files of the
        container (LXD's ``record-output``); the result and the two file
        names, for ``exec_log_read`` and ``exec_log_delete``."""
        result = self.execute(name, command, **kwargs)
        with self.containers.locked(name):
            files = exec_logs.write(self.containers.records.paths(name),
                                    result.stdout, result.stderr)
        return result, files

    def exec_logs(self, name: str) -> list[str]:
        """Recorded output files of ``name``, oldest first."""
        self.containers.get(name)
        return exec_logs.list_files(self.containers.records.paths(name))

    def exec_log_read(self, name: str, file: str) -> bytes:
        self.containers.get(name)
        return exec_logs.read(self.containers.records.paths(name), file)

    def exec_log_delete(self, name: str, file: str) -> None:
        with self.containers.locked(name):
            exec_logs.delete(self.containers.records.paths(name), file)

    def recover(self) -> list[str]:
        return self.containers.recover() + self.snapshots.recover_all()

    # -- snapshots ---------------------------------------------------------

    @functools.cached_property
    def snapshots(self) -> Snapshots:
        return Snapshots(self.containers, self.images)

    def snapshot_create(self, name: str, snapshot: str, *,
                        stateful: bool = False) -> SnapshotRecord:
        """Snapshot the rootfs (a running container is frozen around
        it; ``frozen_seconds`` says how long); ``stateful`` also dumps
        its processes with CRIU, where ``criu check`` passes."""
        return self.snapshots.create(name, snapshot, stateful=stateful)

    def snapshot_list(self, name: str) -> list[SnapshotRecord]:
        return self.snapshots.list(name)

    def snapshot_get(self, name: str, snapshot: str) -> SnapshotRecord:
        return self.snapshots.get(name, snapshot)

    def snapshot_restore(self, name: str, snapshot: str, *,
                         timeout: float | None = None) -> None:
        """A running container is shut down and started again."""
        self.snapshots.restore(name, snapshot, timeout=timeout)

    def snapshot_delete(self, name: str, snapshot: str) -> None:
        self.snapshots.delete(name, snapshot)

    def snapshot_export(self, name: str, snapshot: str, *,
                        aliases: tuple[str, ...] = (),
                        properties: dict[str, Any] | None = None) -> Image:
        """The snapshot as an image (a rootfs tar.zst) in the store."""
        return self.snapshots.export(name, snapshot, aliases=aliases,
                                     properties=properties)

    def copy(self, source: str, target: str, *,
             snapshot: str | None = None, hostname: str | None = None,
             metadata: dict[str, str] | None = None,
             nics: Iterable[Nic | dict[str, Any]] = ()) -> ContainerRecord:
        """A new stopped container from ``source`` or its ``snapshot``."""
        return self.snapshots.copy(source, target, snapshot=snapshot,
                                   hostname=hostname, metadata=metadata,
                                   nic_specs=nics)

    # -- moves between hosts -----------------------------------------------

    @property
    def transfers(self) -> Transfers:
        return Transfers(self.containers, self.snapshots)

    def send(self, name: str, out: BinaryIO, *, snapshots: bool = True,
             progress: ByteProgress | None = None,
             formats: tuple[str, ...] = ("tar",),
             live: bool = False) -> TransferSummary:
        """Write the container (and its ``snapshots``) to ``out`` as a
        checked stream that ``receive`` on another host turns back into
        it, its trees in the best of the receiver's ``formats`` (its
        ``transfer_formats``); nothing changes here. ``live``: its
        processes go too (dumped by CRIU: it stops here); end with
        ``live_finish``."""
        return self.transfers.send(name, out, with_snapshots=snapshots,
                                   progress=progress, formats=formats,
                                   live=live)

    def live_problem(self, name: str) -> str | None:
        """Why ``name`` cannot move live from here (None: it can)."""
        return livemove.problem(self.containers, name)

    def live_finish(self, name: str, *, moved: bool) -> None:
        """After a live ``send``: the receiver restored the processes
        (``moved``: drop the dump; the caller deletes the stopped source)
        or did not (restore them here: the source runs on)."""
        livemove.finish(self.containers, name, moved=moved)

    def transfer_formats(self) -> list[str]:
        """How this host receives trees, best first (``btrfs`` send
        streams between btrfs pools, else ``tar``)."""
        return self.transfers.accepted_formats()

    def receive(self, name: str, source: BinaryIO, *,
                hostname: str | None = None,
                metadata: dict[str, str] | None = None,
                nics: Iterable[Nic | dict[str, Any]] | None = None,
                progress: ByteProgress | None = None) -> ContainerRecord:
        """A new stopped container from a ``send`` stream, committed only
        once the whole stream checked out; all or nothing."""
        return self.transfers.receive(name, source, hostname=hostname,
                                      metadata=metadata, nic_specs=nics,
                                      progress=progress)

    def stateful_snapshot_problem(self) -> str | None:
        """Why stateful snapshots cannot work here (None: they can)."""
        return criu.problem()

    def _timeout(self, timeout: float | None) -> float:
        return self.config.stop_timeout if timeout is None else timeout


def _marker(root: Path, token: str) -> Path:
    if not (isinstance(token, str) and len(token) == 32
            and all(c in "0123456789abcdef" for c in token)):
        raise errors.InvalidInput(f"Invalid storage marker {token!r}.")
    return root / "markers" / token
