"""From whatever an operator or tenant uploaded to a rootfs tarball.

One place decides what an input is (by content, cross-checked with what
Glance says it is) and which converter makes a rootfs tarball of it:

==============================  ==============================================
root tarball (tar, gz, xz,      kept as it is: scanned, hashed, stored
bz2, zst)
LXD unified tarball             ``unified.repack``: ``rootfs/`` re-rooted into
                                a tar.zst in one pass; metadata.yaml kept as
                                properties
disk image (raw, qcow2, vmdk,   ``disk.convert_disk``: qemu-img to raw, the
vdi, vhdx)                      root partition mounted read-only in a private
                                mount namespace, archived with tar | zstd -T0
==============================  ==============================================

``ImageImporter.import_file`` feeds the engine's image store (and reuses an
image already converted from the same Glance image and checksum);
``convert_file`` writes a tarball anywhere, for the offline
``nova-lxd-image convert`` command.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from oslo_log import log as logging

from nova_lxd.engine import errors
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.images import (
    detect,
    disk,
    extract,
    facts,
    qemu,
    transcode,
    unified,
)
from nova_lxd.engine.images.progress import Progress, silent
from nova_lxd.engine.images.store import Image, ImageStore

LOG = logging.getLogger(__name__)
_CHUNK = 1024 * 1024
_META_SLACK = 1024 * 1024
"""Tar headers and padding a split image's metadata part may add."""


@dataclasses.dataclass
class Conversion:
    """What a conversion found out, for properties and for the user."""

    kind: str
    """'tar', 'unified' or 'disk'."""
    source_format: str
    """The detected compression (tarballs) or disk format."""
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    detail: str = ""
    """A sentence for the user, e.g. which partition was chosen."""
    checked: extract.ExtractStats | None = None
    """Set when the engine wrote the tarball from a checked source."""


class ImageImporter:
    def __init__(self, store: ImageStore | None,
                 config: EngineConfig) -> None:
        """``store`` may be None for offline conversions only."""
        self.store = store
        self.config = config

    # -- into the store ----------------------------------------------------

    def import_file(self, source: Path, *, aliases: tuple[str, ...] = (),
                    properties: dict[str, Any] | None = None,
                    origin: dict[str, Any] | None = None,
                    disk_format: str | None = None,
                    container_format: str | None = None,
                    progress: Progress | None = None) -> Image:
        """Import any supported input; the same ``origin`` (e.g. Glance id
        and checksum) converted before gives back the stored image."""
        source = Path(source)
        if origin:
            known = self.store.find_by_origin(**origin)
            if known is not None:
                LOG.info("Image %s already converted from %s",
                         known.fingerprint[:12], origin)
                for alias in aliases:
                    self.store.add_alias(alias, known.fingerprint)
                self.store.touch(known.fingerprint)
                return self.store.get(known.fingerprint)
        found = self._identify(source, disk_format, container_format)
        props = dict(properties or {})
        if found.kind == "tar":
            return self.store.import_tarball(
                source, aliases=aliases, properties=props, origin=origin,
                facts=True)
        # Glance gives the source's checksum; only a local file is hashed
        # (on the other core, while it converts).
        checksum = None if (origin or {}).get("checksum") else (
            _BackgroundHash(source))
        with self.store.scratch() as work:
            out = work / "rootfs.tar.zst"
            conversion = self._convert(source, found, out, work,
                                       progress or silent)
            props.update(conversion.properties)
            if checksum is not None:
                props["source_sha256"] = checksum.result()
            else:
                props["source_checksum"] = origin["checksum"]
            props["source_format"] = conversion.source_format
            return self.store.import_tarball(
                out, aliases=aliases, properties=props, origin=origin,
                move=True, facts="os_distro" not in props,
                checked=conversion.checked)

    def import_split(self, metadata: Path, rootfs: Path, *,
                     aliases: tuple[str, ...] = (),
                     properties: dict[str, Any] | None = None) -> Image:
        """A split image (see ``Engine.import_split_image``); the
        metadata part is bounded by what a unified tarball may hold."""
        limit = unified.MAX_METADATA + unified.MAX_TEMPLATES + _META_SLACK
        if metadata.stat().st_size > limit:
            raise errors.ImageTooLarge(
                source="metadata", limit=f"{limit} bytes",
                reason="the metadata part is larger than its metadata.yaml "
                       "and templates may be")
        meta = unified.read_metadata(
            metadata, max_members=self.config.max_image_members)
        found = self._identify(rootfs, None, None)
        if found.kind != "tar":
            raise errors.InvalidImage(
                source="rootfs", reason=f"the rootfs part is {found.kind}, "
                "not a root tarball (tar -C rootfs -c .)")
        props = {**_unified_properties(meta), **(properties or {})}
        return self.store.import_tarball(
            rootfs, aliases=aliases, properties=props, facts=True,
            hash_prefix=metadata.read_bytes())

    # -- anywhere (offline) ------------------------------------------------

    def convert_file(self, source: Path, dest: Path, *,
                     disk_format: str | None = None,
                     container_format: str | None = None,
                     progress: Progress | None = None) -> Conversion:
        """Write a rootfs tarball of ``source`` to ``dest`` (compression
        from its name); ``dest`` appears only when all went well."""
        source, dest = Path(source), Path(dest)
        kind = transcode.compression_for(dest)
        found = self._identify(source, disk_format, container_format)
        progress = progress or silent
        work = Path(tempfile.mkdtemp(prefix=".nova-lxd-image-",
                                     dir=dest.parent))
        try:
            if found.kind == "tar":
                conversion = Conversion("tar", found.compression)
                staged = source
            else:
                staged = work / "rootfs.tar.zst"
                conversion = self._convert(source, found, staged, work,
                                           progress)
            if conversion.checked is None or (
                    "os_distro" not in conversion.properties):
                # One pass: the extraction's safety rules, and the facts.
                progress("check", 0.0)
                found_facts = facts.from_tarball(
                    staged, max_bytes=self.config.max_unpacked_size,
                    max_members=self.config.max_image_members)
                progress("check", 1.0)
                conversion.properties = {**found_facts.to_properties(),
                                         **conversion.properties}
            final = work / ("out" + dest.name)
            transcode.transcode(staged, final, kind)
            os.replace(final, dest)
            return conversion
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- shared ------------------------------------------------------------

    @staticmethod
    def _identify(source: Path, disk_format: str | None,
                  container_format: str | None) -> detect.Detected:
        if not source.is_file():
            raise errors.InvalidImage(source=str(source),
                                      reason="no such file")
        found = detect.detect(source)
        detect.cross_check(found, disk_format=disk_format,
                           container_format=container_format)
        LOG.info("Image %s is a %s (%s)", source.name, found.kind,
                 found.disk_format or found.compression)
        return found

    def _convert(self, source: Path, found: detect.Detected, out: Path,
                 work: Path, progress: Progress) -> Conversion:
        if found.kind == "unified":
            progress("repack", 0.0)
            meta = unified.repack(
                source, out, max_bytes=self.config.max_unpacked_size,
                max_members=self.config.max_image_members)
            progress("repack", 1.0)
            return Conversion("unified", found.compression,
                              _unified_properties(meta),
                              "LXD unified tarball: rootfs/ re-rooted")
        limits = qemu.Limits(cpu_seconds=self.config.qemu_img_cpu_seconds,
                             memory=self.config.qemu_img_memory,
                             max_virtual_size=self.config.max_virtual_size)
        result = disk.convert_disk(
            source, found.disk_format, out, workdir=work, limits=limits,
            max_unpacked_size=self.config.max_unpacked_size,
            progress=progress,
            inspect=lambda root: facts.from_directory(root).to_properties())
        props = dict(result.inspected or {})
        props["root_partition"] = result.partition
        props["root_filesystem"] = result.filesystem
        props["source_virtual_size"] = result.virtual_size
        detail = (f"{found.disk_format} disk: root file system "
                  f"{result.filesystem} on {result.partition} "
                  f"({result.chosen_reason})")
        LOG.info("%s: %s", source.name, detail)
        return Conversion("disk", found.disk_format, props, detail,
                          checked=extract.ExtractStats(
                              bytes=result.tar_bytes))


def _unified_properties(meta: unified.UnifiedMetadata) -> dict[str, Any]:
    """An image's properties from its metadata.yaml."""
    props: dict[str, Any] = dict(meta.properties)
    props["architecture"] = meta.architecture
    if meta.templates:
        props["templates"] = meta.templates
    return props


class _BackgroundHash:
    """sha256 of the source, computed on another core while it converts."""

    def __init__(self, path: Path) -> None:
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(path,),
                                        daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
            self._digest = digest.hexdigest()
        except OSError as exc:
            self._error = exc

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise errors.InvalidImage(source="source",
                                      reason=str(self._error))
        assert self._digest is not None
        return self._digest
