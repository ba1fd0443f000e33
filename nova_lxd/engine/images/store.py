"""The image store: rootfs tarballs addressed by the sha256 of the file.

Layout under the store directory::

    <fingerprint>/rootfs.tar[.gz|.xz|.bz2|.zst]   the imported file, as is
    <fingerprint>/image.json                      its record (see Image)
    aliases.json                                  {alias: fingerprint}
    .lock                                         the writers' lock
    .tmp/<job>/                                   imports and deletes in
                                                  flight, each holding
                                                  <job>/.lock

An image is built whole in ``.tmp/`` and renamed into place, so readers
(who take no lock) see it complete or not at all, and a writer killed at
any point leaves only a ``.tmp/`` job whose lock died with it: the next
store to open removes it. Writers serialise on ``.lock`` (an flock, so
several engine processes can share one root) only for the short steps
that change what readers see; the copy and the scan run unlocked.

Converters (``pipeline.py``: unified tarballs, disk images) write a
tarball in a ``scratch()`` directory and import it with ``move=True``: it
is hashed where it lies and renamed in, never copied. They pass their
facts (source checksum, OS) as ``properties`` and their input (a Glance
id and checksum) as ``origin``, which ``find_by_origin`` looks up so that
one Glance image is converted once. ``facts=True`` reads the OS facts in
the import's scan, so a tarball is read once for both.

Housekeeping (``housekeeping.py``): ``total_size`` and ``evict``, which
removes the least recently used images (``last_used_at``, kept by
``touch``) that no container uses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from oslo_log import log as logging

from nova_lxd.engine import errors, fsutil, locks
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.images import compression, extract, housekeeping, ingest
from nova_lxd.engine.images import facts as os_facts

LOG = logging.getLogger(__name__)

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")
_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:@/-]{0,254}")
_MIN_PREFIX = 8
_CHUNK = 1024 * 1024
_RECORD_FORMAT = 1
# A plain tar holds its files plus a header (two with pax) and padding per
# member: that bounds the file we copy before we can scan it.
_TAR_OVERHEAD = 2048


@dataclasses.dataclass(frozen=True)
class Image:
    """An imported image; ``aliases`` come from ``aliases.json``."""

    fingerprint: str
    filename: str
    size: int
    compression: str
    aliases: tuple[str, ...] = ()
    properties: dict[str, Any] = dataclasses.field(
        default_factory=dict, hash=False)
    created_at: float = 0.0
    last_used_at: float = 0.0
    origin: dict[str, Any] = dataclasses.field(
        default_factory=dict, hash=False)
    """Where the file came from (a path, or a converter's input)."""
    unpacked_size: int = 0
    """Bytes of regular files once extracted (sizing root disks)."""
    members: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["aliases"] = list(self.aliases)
        return d

    @classmethod
    def from_record(cls, record: Mapping[str, Any],
                    aliases: Iterable[str]) -> Image:
        names = {f.name for f in dataclasses.fields(cls)} - {"aliases"}
        return cls(aliases=tuple(sorted(aliases)),
                   **{k: v for k, v in record.items() if k in names})


def _check_alias(alias: str) -> None:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise errors.InvalidName(
            f"Invalid image alias {alias!r}: use 1-255 letters, digits "
            "and '._+:@/-', starting with a letter or a digit.")
    if _FINGERPRINT.fullmatch(alias):
        raise errors.InvalidName(
            f"Invalid image alias {alias!r}: it reads as a fingerprint.")


def _job_in_use(job: Path) -> bool:
    """Whether a live writer holds ``job``'s lock (a dead one's is gone:
    the kernel drops flocks with their process)."""
    try:
        fd = os.open(job / ".lock", os.O_RDWR | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class ImageStore:
    """Imports, finds, aliases and deletes images under ``directory``."""

    def __init__(self, directory: Path, lock_timeout: float = 120.0, *,
                 max_bytes: int = EngineConfig.max_unpacked_size,
                 max_members: int = EngineConfig.max_image_members) -> None:
        self.directory = Path(directory)
        self.lock_timeout = lock_timeout
        self.max_bytes = max_bytes
        self.max_members = max_members
        self._tmp = self.directory / ".tmp"
        self._aliases = self.directory / "aliases.json"
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked():
            self._tmp.mkdir(mode=0o700, exist_ok=True)
            self._clean_tmp()

    @classmethod
    def from_config(cls, config: EngineConfig) -> ImageStore:
        return cls(config.images_dir, config.lock_timeout,
                   max_bytes=config.max_unpacked_size,
                   max_members=config.max_image_members)

    # -- reading (no lock: every file is replaced atomically) --

    def get(self, ref: str) -> Image:
        """Look up a fingerprint, an alias, or a unique prefix of at least
        eight hex digits, in that order."""
        return self._load(self._resolve(ref))

    def list(self) -> list[Image]:
        aliases = self._read_aliases()
        images = []
        for fp in self._fingerprints():
            with contextlib.suppress(errors.ImageNotFound):
                images.append(self._load(fp, aliases))
        return sorted(images, key=lambda i: (i.created_at, i.fingerprint))

    def tarball_path(self, fingerprint: str) -> Path:
        image = self.get(fingerprint)
        return self.directory / image.fingerprint / image.filename

    def find_by_origin(self, **match: Any) -> Image | None:
        """The newest image whose ``origin`` has all of ``match`` (e.g.
        ``glance_id=..., checksum=...``), so that one upload is not
        converted twice; None if there is none."""
        if not match:
            raise errors.InvalidInput("find_by_origin needs at least one "
                                      "origin key to match.")
        found = [i for i in self.list()
                 if all(k in i.origin and i.origin[k] == v
                        for k, v in match.items())]
        return found[-1] if found else None

    def total_size(self) -> int:
        """Bytes of the stored tarballs."""
        return housekeeping.total_size(self)

    def evict(self, max_bytes: int, *, in_use: set[str]) -> list[Image]:
        """Delete least recently used images, never one whose fingerprint
        is in ``in_use``, until the store holds at most ``max_bytes``;
        the deleted images, in order. The caller keeps ``in_use`` true
        meanwhile (no container may start using an image it left out)."""
        return housekeeping.evict(self, max_bytes, in_use=in_use)

    # -- writing --

    def import_tarball(self, source: Path, *, aliases: Iterable[str] = (),
                       properties: Mapping[str, Any] | None = None,
                       origin: Mapping[str, Any] | None = None,
                       move: bool = False, facts: bool = False,
                       checked: extract.ExtractStats | None = None,
                       hash_prefix: bytes = b""
                       ) -> Image:
        """Copy ``source`` into the store (after checking it with the
        rules of ``extract_rootfs``) and return its Image. A file already
        in the store is not copied again: its Image is returned, with the
        new ``aliases`` added and its properties and origin kept.

        ``move``: ``source`` is a file made in this store's ``scratch()``;
        it is renamed in and hashed in place, not copied (and is gone
        from there once the import has started, whatever its outcome).
        ``facts``: the OS facts read during the scan (``os_distro``,
        ``os_version``, ``os_name``, ``architecture``) are added to
        ``properties``, which win where both say something.
        ``checked``: the engine produced this tarball itself from a source
        it checked (a mounted disk, a repacked unified tarball) and these
        are its stats: the scan is skipped, as it would only repeat those
        checks. Every member is still checked again when a container is
        created from the image.
        ``hash_prefix``: bytes hashed before the file into its fingerprint
        (not stored): a split image's metadata tarball, as LXD's
        fingerprint of a split image is the sha256 of metadata then
        rootfs."""
        source = Path(source)
        if move and hash_prefix:
            raise ValueError("hash_prefix is for copied files")
        if move:
            self._check_scratch_file(source)
        if isinstance(aliases, str):
            aliases = (aliases,)
        aliases = tuple(dict.fromkeys(aliases))
        for alias in aliases:
            _check_alias(alias)
        props = dict(properties or {})
        origin = dict(origin or {"path": str(source.absolute())})
        try:
            json.dumps([props, origin])
        except (TypeError, ValueError) as exc:
            raise errors.InvalidInput(
                f"Image properties must be JSON values: {exc}") from None
        with self.scratch() as job:
            upload = job / "upload"
            limit = (self.max_bytes + _TAR_OVERHEAD * self.max_members
                     + _CHUNK)
            if move:
                os.rename(source, upload)
                fp, size = ingest.hash_in_place(upload, limit)
            else:
                fp, size = ingest.copy_hashed(source, upload, limit,
                                              hash_prefix=hash_prefix)
            if (self.directory / fp).is_dir():
                LOG.info("Image %s already imported (from %s)", fp, source)
                return self._commit_aliases(fp, aliases)
            self._check_aliases_free(self._read_aliases(), fp, aliases)
            kind = compression.detect_compression(upload)
            collector = os_facts.TarballCollector() if facts else None
            if checked is not None and collector is None:
                stats = checked
            else:
                stats = extract.scan_rootfs(upload,
                                            max_bytes=self.max_bytes,
                                            max_members=self.max_members,
                                            observe=collector)
            if not stats.members and not stats.bytes:
                raise errors.InvalidImage(source=str(source),
                                          reason="the archive is empty")
            if collector is not None:
                props = {**collector.facts().to_properties(), **props}
            stage = job / "image"
            stage.mkdir(mode=0o700)
            filename = "rootfs.tar" + compression.SUFFIXES[kind]
            os.rename(upload, stage / filename)
            now = time.time()
            record = Image(fingerprint=fp, filename=filename, size=size,
                           compression=kind, properties=props,
                           created_at=now, last_used_at=now, origin=origin,
                           unpacked_size=stats.bytes,
                           members=stats.members).to_dict()
            del record["aliases"]
            record["format"] = _RECORD_FORMAT
            fsutil.write_json(stage / "image.json", record)
            ingest.fsync_dir(stage)
            with self._locked():
                if (self.directory / fp).is_dir():
                    LOG.info("Image %s was imported concurrently", fp)
                else:
                    self._check_aliases_free(self._read_aliases(), fp,
                                             aliases)
                    os.rename(stage, self.directory / fp)
                    ingest.fsync_dir(self.directory)
                    LOG.info("Imported image %s (%s, %d bytes, %d members) "
                             "from %s", fp, kind, size, stats.members,
                             source)
                return self._commit_aliases(fp, aliases, locked=True)

    def delete(self, ref: str) -> None:
        """Remove an image and its aliases; the caller has checked that
        no container uses it."""
        with self._locked():
            fp = self._resolve(ref)
            trash = Path(tempfile.mkdtemp(dir=self._tmp,
                                          prefix=f"delete-{fp[:12]}-"))
            # One rename makes it vanish for readers; a crash leaves a
            # lock-less job that the next store removes.
            os.rename(self.directory / fp, trash / fp)
            aliases = self._read_aliases()
            self._write_aliases({a: f for a, f in aliases.items()
                                 if f != fp})
            fsutil.remove_tree(trash)
        LOG.info("Deleted image %s", fp)

    def add_alias(self, alias: str, ref: str) -> Image:
        _check_alias(alias)
        with self._locked():
            return self._commit_aliases(self._resolve(ref), (alias,),
                                        locked=True)

    def remove_alias(self, alias: str) -> None:
        with self._locked():
            aliases = self._read_aliases()
            if alias not in aliases:
                raise errors.ImageNotFound(
                    f"Image alias {alias!r} does not exist.", ref=alias)
            del aliases[alias]
            self._write_aliases(aliases)

    def touch(self, fingerprint: str) -> None:
        """Record a use now, for least-recently-used eviction."""
        with self._locked():
            fp = self._resolve(fingerprint)
            path = self.directory / fp / "image.json"
            record = fsutil.read_json(path)
            record["last_used_at"] = time.time()
            fsutil.write_json(path, record)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A private directory on the store's file system, removed
        afterwards, or by the next store to open if this process dies."""
        with self._locked():
            job = Path(tempfile.mkdtemp(dir=self._tmp, prefix="job-"))
            hold = locks.FileLock(job / ".lock")
            hold.acquire(blocking=False)
        try:
            yield job
        finally:
            with self._locked():
                fsutil.remove_tree(job)
                hold.release()

    # -- internals --

    def _locked(self) -> contextlib.AbstractContextManager[Any]:
        return locks.locked(self.directory / ".lock", self.lock_timeout,
                            what=f"image store {self.directory}")

    def _clean_tmp(self) -> None:
        for entry in os.scandir(self._tmp):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False) and _job_in_use(path):
                continue
            LOG.warning("Removing %s, left behind by an interrupted image "
                        "import or delete", path)
            fsutil.remove_tree(path)

    def _check_scratch_file(self, source: Path) -> None:
        """A file to move in must be one this store's ``scratch()`` made:
        anything else might be on another file system, or not ours."""
        try:
            inside = source.resolve(strict=True).is_relative_to(
                self._tmp.resolve())
        except OSError:
            inside = False
        if not inside or source.is_symlink():
            raise errors.InvalidInput(
                f"Cannot move {source} into the image store: only files "
                f"made in its scratch() directory can be.")

    def _fingerprints(self) -> list[str]:
        with os.scandir(self.directory) as entries:
            return [e.name for e in entries if _FINGERPRINT.fullmatch(e.name)
                    and e.is_dir(follow_symlinks=False)]

    def _resolve(self, ref: str) -> str:
        ref = str(ref)
        if _FINGERPRINT.fullmatch(ref) and (self.directory / ref).is_dir():
            return ref
        target = self._read_aliases().get(ref)
        if target and (self.directory / target).is_dir():
            return target
        prefix = ref.lower()
        if _MIN_PREFIX <= len(prefix) < 64 and _HEX.fullmatch(prefix):
            found = [fp for fp in self._fingerprints()
                     if fp.startswith(prefix)]
            if len(found) == 1:
                return found[0]
            if found:
                raise errors.InvalidInput(
                    f"Image prefix {ref} is ambiguous: it matches "
                    f"{', '.join(sorted(found))}; give more digits.")
        raise errors.ImageNotFound(ref=ref)

    def _load(self, fp: str,
              aliases: Mapping[str, str] | None = None) -> Image:
        try:
            record = fsutil.read_json(self.directory / fp / "image.json")
        except FileNotFoundError:
            raise errors.ImageNotFound(ref=fp) from None
        if aliases is None:
            aliases = self._read_aliases()
        return Image.from_record(
            record, (a for a, f in aliases.items() if f == fp))

    def _read_aliases(self) -> dict[str, str]:
        try:
            return dict(fsutil.read_json(self._aliases))
        except FileNotFoundError:
            return {}

    def _write_aliases(self, aliases: Mapping[str, str]) -> None:
        # Drop aliases of images that are gone (a delete cut short).
        live = set(self._fingerprints())
        fsutil.write_json(self._aliases, {a: f for a, f in aliases.items()
                                          if f in live})

    def _check_aliases_free(self, current: Mapping[str, str], fp: str,
                            aliases: Iterable[str]) -> None:
        for alias in aliases:
            other = current.get(alias)
            if other and other != fp and (self.directory / other).is_dir():
                raise errors.ImageAliasExists(alias=alias, fingerprint=other)

    def _commit_aliases(self, fp: str, aliases: tuple[str, ...],
                        locked: bool = False) -> Image:
        if not aliases:
            return self._load(fp)
        if not locked:
            with self._locked():
                return self._commit_aliases(fp, aliases, locked=True)
        current = self._read_aliases()
        self._check_aliases_free(current, fp, aliases)
        if any(current.get(a) != fp for a in aliases):
            current.update(dict.fromkeys(aliases, fp))
            self._write_aliases(current)
        return self._load(fp, current)
