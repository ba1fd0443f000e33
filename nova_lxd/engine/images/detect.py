"""What an upload is, from its content, and whether Glance agrees.

Content decides; what Glance says (``disk_format``, ``container_format``)
is a tenant's claim, checked against it by ``cross_check``:

=========  =============================================================
kind       recognised by
=========  =============================================================
tar        a ustar, GNU or v7 tar header (valid checksum), after gzip,
           xz, bzip2 or zstd decompression if any
unified    a tar with ``metadata.yaml`` and ``rootfs/`` at its top level
           (LXD's unified image)
disk       qcow2 ``QFI\\xfb``, vmdk ``KDMV`` or ``# Disk DescriptorFile``,
           vhdx ``vhdxfile``, vdi ``0xbeda107f`` at 64; raw: an MBR
           (``55 AA`` at 510), a GPT (``EFI PART`` at 512) or a file
           system (ext 0xEF53 at 1080, ``XFSB``, btrfs ``_BHRfS_M`` at
           65600, squashfs ``hsqs``)
=========  =============================================================

The tar check comes before the raw signatures: a valid tar header is
strong evidence, and a tar's first file may well hold ``EFI PART`` at
offset 512. A file system that starts with zeros is no tar (a zero block
is not a header).

Unified or plain: LXD writes ``metadata.yaml`` first, so a unified tarball
is known after a few headers; for any other tarball every header is read
(data is skipped when the tar is uncompressed, decompressed otherwise),
since ``metadata.yaml`` may come last (``tar -C dir -c .`` writes in
directory order).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

from nova_lxd.engine import errors
from nova_lxd.engine.images import compression, extract

TAR = "tar"
UNIFIED = "unified"
DISK = "disk"

DISK_FORMATS = ("qcow2", "vmdk", "vdi", "vhdx", "raw")
"""Disk formats detected (and converted by ``disk.py``)."""

_COMPRESSION_NAMES = {"gz": "gzip", "xz": "xz", "bz2": "bzip2",
                      "zst": "zstd"}
_DECOMPRESS_HINT = {"gz": "gunzip", "xz": "xz -d", "bz2": "bunzip2",
                    "zst": "zstd -d"}

# (offset, magic, disk format, what): container formats, checked first.
_DISK_MAGIC = (
    (0, b"QFI\xfb", "qcow2", "qcow2 header"),
    (0, b"KDMV", "vmdk", "sparse extent header"),
    (0, b"# Disk DescriptorFile", "vmdk", "text descriptor"),
    (0, b"vhdxfile", "vhdx", "vhdx file identifier"),
    (64, b"\x7f\x10\xda\xbe", "vdi", "VirtualBox signature"),
)
# Raw disks: a partition table or a file system.
_RAW_MAGIC = (
    (512, b"EFI PART", "GPT partition table"),
    (510, b"\x55\xaa", "MBR partition table"),
    (1080, b"\x53\xef", "ext2/3/4 file system"),
    (0, b"XFSB", "xfs file system"),
    (65600, b"_BHRfS_M", "btrfs file system"),
    (0, b"hsqs", "squashfs file system"),
)
# Recognised only to say what they are when refusing them.
_OTHER_MAGIC = (
    (32769, b"CD001", "an ISO 9660 image (installation media), not a "
     "container image"),
    (0, b"conectix", "a VHD disk image, which nova-lxd does not read: "
     "convert it (qemu-img convert -O qcow2) and upload it with "
     "--disk-format qcow2"),
    (0, b"PK\x03\x04", "a zip archive: pack the root file system as a "
     "tar archive instead"),
    (0, b"\x7fELF", "an ELF executable, not an image"),
    (0, b"\x89PNG", "a PNG picture, not an image of a system"),
)
_HEAD = 65600 + 8
_BLOCK = 512

_TOP_UNIFIED = ("metadata.yaml", "rootfs", "templates")


@dataclasses.dataclass(frozen=True)
class Detected:
    """What ``detect`` found in a file."""

    kind: str
    """``tar``, ``unified`` or ``disk``."""
    compression: str = "none"
    """Of a tarball: none, gz, xz, bz2 or zst; ``none`` for disks."""
    disk_format: str | None = None
    """Of a disk: qcow2, vmdk, vdi, vhdx or raw."""
    what: str = ""
    """The evidence: the tar header format, or the magic number seen."""
    source: str = ""
    """The file, for messages."""

    def describe(self) -> str:
        """E.g. 'a gzip-compressed tar', 'a qcow2 disk image'."""
        if self.kind == DISK:
            return f"a {self.disk_format} disk image ({self.what})"
        packed = _COMPRESSION_NAMES.get(self.compression)
        if self.kind == UNIFIED:
            return ("an LXD unified tarball"
                    + (f" ({packed}-compressed)" if packed else ""))
        return f"a {packed}-compressed tar" if packed else (
            "an uncompressed tar")


def detect(path: Path) -> Detected:
    """Identify ``path`` by its content; ``InvalidImage`` naming what was
    seen when it is neither a tarball nor a supported disk image."""
    path = Path(path)
    src = str(path)
    with _open_regular(path) as f:
        head = f.read(_HEAD)
        size = os.fstat(f.fileno()).st_size
        tail = b""
        if size >= _BLOCK:
            f.seek(size - _BLOCK)
            tail = f.read(_BLOCK)
    if not head:
        _refuse(src, "the file is empty")
    if row := _match(head, _DISK_MAGIC):
        return Detected(DISK, disk_format=row[2], what=row[3], source=src)
    packed = compression.compression_from_header(head[:_BLOCK])
    if packed not in (None, "none"):
        return _compressed(path, packed)
    tar_format = compression.tar_header_format(head[:_BLOCK])
    if tar_format is not None:
        return _tarball(path, "none", tar_format)
    if row := _match(head, _OTHER_MAGIC):
        _refuse(src, f"the file is {row[2]}")
    if row := _match(head, _RAW_MAGIC):
        return Detected(DISK, disk_format="raw", what=row[2], source=src)
    if tail.startswith(b"conectix"):  # a fixed VHD's footer
        _refuse(src, "the file is " + _OTHER_MAGIC[1][2])
    _refuse(src, _unknown(head))


def cross_check(detected: Detected, disk_format: str | None = None,
                container_format: str | None = None) -> None:
    """Refuse an upload whose Glance formats contradict its content, or
    that Glance says is no container image; ``InvalidImage`` says how to
    upload it right."""
    found = detected.describe()
    src = detected.source or "upload"
    if container_format is not None:
        cf = container_format.lower()
        if cf in _CONTAINER_REFUSED:
            _refuse(src, f"Glance says container format {cf}, "
                    f"{_CONTAINER_REFUSED[cf]}")
        if cf not in ("bare", "compressed"):
            _refuse(src, f"unknown container format {container_format!r}; "
                    "upload with --container-format bare")
    if disk_format is None:
        return
    df = disk_format.lower()
    if df in _DISK_REFUSED:
        _refuse(src, f"Glance says disk format {df}, "
                f"{_DISK_REFUSED[df]}")
    if df not in ("raw", "root-tar", *DISK_FORMATS):
        _refuse(src, f"unknown disk format {disk_format!r}: use raw (a "
                "root tarball or a raw disk), root-tar, qcow2, vmdk, vdi "
                "or vhdx")
    if detected.kind in (TAR, UNIFIED):
        if df in ("raw", "root-tar"):
            return  # raw + tar: how nova-lxd images are uploaded
        _refuse(src, f"Glance says {df} but the file is {found}; "
                "re-upload with --disk-format raw")
    if df == detected.disk_format:
        return
    _refuse(src, f"Glance says {df} but the file is {found}; re-upload "
            f"with --disk-format {detected.disk_format}")


_CONTAINER_REFUSED = {
    "ovf": "an OVF package: upload the disk image inside it with "
           "--container-format bare",
    "ova": "an OVA archive (OVF package): upload the disk image inside "
           "it with --container-format bare",
    "docker": "a Docker image, not a system container's root file "
              "system: upload a root tarball (docker export) with "
              "--container-format bare --disk-format raw",
    "aki": "an Amazon kernel image, not a container image",
    "ari": "an Amazon ramdisk image, not a container image",
    "ami": "an Amazon machine image, not a container image: upload the "
           "disk image with --container-format bare",
}
_DISK_REFUSED = {
    "iso": "an optical disc image (installation media), not a container "
           "image",
    "ploop": "a Virtuozzo ploop disk, not a container image nova-lxd can "
             "read: convert it to raw or qcow2",
    "aki": "an Amazon kernel image, not a container image",
    "ari": "an Amazon ramdisk image, not a container image",
    "ami": "an Amazon machine image, not a container image: upload its "
           "disk as raw or qcow2",
    "vhd": "which nova-lxd does not read: convert it (qemu-img convert "
           "-O qcow2) and upload it with --disk-format qcow2",
}


def _compressed(path: Path, packed: str) -> Detected:
    """A compressed file must hold a tar: anything else is refused,
    naming what it holds."""
    with compression.open_decompressed(path, packed) as stream:
        head = _read_fully(stream, _HEAD)
    tar_format = compression.tar_header_format(head[:_BLOCK])
    if tar_format is not None:
        return _tarball(path, packed, tar_format)
    name = _COMPRESSION_NAMES[packed]
    inner = None
    if row := _match(head, _DISK_MAGIC):
        inner = f"{row[2]} disk image"
    elif row := _match(head, _RAW_MAGIC):
        inner = f"raw disk image ({row[2]})"
    if inner is not None:
        _refuse(str(path), f"the file is a {name}-compressed {inner}: "
                f"decompress it ({_DECOMPRESS_HINT[packed]}) and upload "
                "the disk image itself")
    if not head.strip(b"\0"):
        _refuse(str(path), f"the file is {name}-compressed zeros (an "
                "empty tar archive?)")
    _refuse(str(path), f"the file is {name}-compressed data that is not "
            f"a tar archive ({_unknown(head, what='it')})")


def _tarball(path: Path, packed: str, tar_format: str) -> Detected:
    """Plain or unified: see the module's docstring."""
    meta = rootfs = other = False
    try:
        with _headers(path, packed) as tar:
            while (m := tar.next()) is not None:
                tar.members.clear()
                name = m.name.lstrip("/")
                while name.startswith("./"):
                    name = name[2:].lstrip("/")
                top, _, rest = name.partition("/")
                if not top or top == ".":
                    continue
                other = other or top not in _TOP_UNIFIED
                meta = meta or (top == "metadata.yaml" and not rest.strip(
                    "/"))
                rootfs = rootfs or top == "rootfs"
                if meta and rootfs:
                    return Detected(UNIFIED, packed, what=tar_format,
                                    source=str(path))
    except extract.BadHeader as exc:
        _refuse(str(path), f"broken tar archive: {exc}")
    except tarfile.TarError as exc:
        _refuse(str(path), f"not a valid tar archive: {exc}")
    if not other:
        if rootfs:
            _refuse(str(path), "it holds rootfs/ but no metadata.yaml: "
                    "for a root tarball, archive the tree from inside "
                    "(tar -C rootfs -c .); for an LXD unified tarball, "
                    "add metadata.yaml")
        if meta:
            _refuse(str(path), "it is an LXD metadata tarball (no "
                    "rootfs/): upload the image's rootfs tarball, or a "
                    "unified tarball holding both")
    return Detected(TAR, packed, what=tar_format, source=str(path))


@contextlib.contextmanager
def _headers(path: Path, packed: str) -> Iterator[tarfile.TarFile]:
    """A tar reader that seeks over data when it can (an uncompressed
    file), and streams otherwise."""
    mode = "r:" if packed == "none" else "r|"
    with compression.open_decompressed(path, packed) as stream, \
            tarfile.open(fileobj=stream, mode=mode,
                         tarinfo=extract.BoundedTarInfo) as tar:
        yield tar


def _match(head: bytes, table: tuple[tuple, ...]) -> tuple | None:
    """The first row of ``table`` whose (offset, magic, ...) ``head``
    has."""
    for row in table:
        offset, magic = row[0], row[1]
        if head[offset:offset + len(magic)] == magic:
            return row
    return None


def _open_regular(path: Path) -> BinaryIO:
    # O_NONBLOCK: a fifo must not hang us before fstat says what it is.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        _refuse(str(path), "not a regular file")
    return open(fd, "rb")


def _read_fully(stream: BinaryIO, size: int) -> bytes:
    chunks = []
    while size > 0 and (chunk := stream.read(size)):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _unknown(head: bytes, what: str = "the file") -> str:
    if not head.strip(b"\0"):
        return (f"{what} starts with zeros: neither a tar archive nor a "
                "disk image with a partition table or file system we know")
    return (f"{what} starts with {head[:16]!r}, which is neither a "
            "tarball (tar, or tar compressed with gzip, xz, bzip2 or "
            "zstd) nor a disk image (raw, qcow2, vmdk, vdi, vhdx)")


def _refuse(source: str, reason: str) -> NoReturn:
    raise errors.InvalidImage(source=source, reason=reason)
