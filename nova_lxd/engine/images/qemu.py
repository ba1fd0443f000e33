"""qemu-img on untrusted disk images: ``info`` checks, ``to_raw`` converts.

Rules (after the qcow2/vmdk host-file reads of CVE-2024-32498 in Nova):

* The format is always given (``-f``): qemu never probes, so a raw image
  cannot pass itself off as a qcow2 that points at a host file.
* Before qemu-img opens anything, the header is read here: a qcow2 with a
  backing file or an external data file, a vmdk descriptor (a text file
  naming extent files) or a vmdk whose embedded descriptor is not a single
  monolithic extent are refused; and the declared format must match the
  magic bytes (a qcow2 declared as raw is refused too). oslo.utils' format
  inspector (the one Nova and Glance use since CVE-2024-32498) then gives
  a second, independent opinion (~3 ms).
* ``qemu-img info`` (``--force-share``) then confirms: no
  ``backing-filename``, no ``data-file``, every vmdk extent is the image
  itself, the format is the declared one, and ``virtual-size`` is bounded.
* Every qemu-img runs confined (see ``confine``): CPU time, address space
  and output file size limits, killed with its caller.

``to_raw`` measured here (206 MB minbase, GPT + ext4, 194 MB qcow2, warm
cache, 1 GiB address-space limit): the default cache (``unsafe``: no
flushes; the raw stays in the page cache for the loop mount that reads it
next) ~100 ms; ``-t none`` (O_DIRECT) 150-250 ms; ``-t writeback``
~240 ms; ``-W`` (out-of-order writes) no slower, so it is on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from oslo_utils.imageutils import format_inspector

from nova_lxd.engine import errors
from nova_lxd.engine.images import confine

MiB = 1024 * 1024
GiB = 1024 * MiB

FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx")

INFO_CPU_SECONDS = 30
MEMORY = 1 * GiB
_HEADER = 64 * 1024
_MAX_DESCRIPTOR = 1 * MiB
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
_QCOW2_EXT_DATA_FILE = 0x44415441
_VMDK_SINGLE_FILE = ("monolithicSparse", "streamOptimized")
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
# What oslo.utils' inspector may call a raw disk.
_RAW_NAMES = ("raw", "gpt", "mbr")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one qemu-img run on an untrusted image may use (from
    EngineConfig's qemu_img_cpu_seconds, qemu_img_memory and
    max_virtual_size)."""

    cpu_seconds: int = 600
    """Cap on CPU time; ``info`` gets at most 30 s of it and ``to_raw``
    at most 60 s plus 1 s per 16 MiB of virtual size."""
    memory: int = 1 * GiB
    """Address space."""
    max_virtual_size: int = 100 * GiB


@dataclasses.dataclass(frozen=True)
class QemuInfo:
    format: str
    virtual_size: int
    actual_size: int
    dirty: bool
    data: dict[str, Any] = dataclasses.field(hash=False, repr=False)
    """The whole ``qemu-img info`` JSON."""


def sniff_format(path: Path) -> str:
    """The format the content claims by its magic bytes; ``raw`` when it
    claims none. Formats we do not convert (vpc, qed, luks) are named so
    that they are refused when declared as something else."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] == b"QFI\xfb":
        return "qcow2"
    if head[:4] in (b"KDMV", b"COWD") or head.startswith(
            b"# Disk DescriptorFile"):
        return "vmdk"
    if head[:8] == b"vhdxfile":
        return "vhdx"
    if len(head) >= 0x44 and struct.unpack_from("<I", head, 0x40)[0] == (
            0xBEDA107F):
        return "vdi"
    if head[:8] == b"conectix":
        return "vpc"
    if head[:4] == b"QED\0":
        return "qed"
    if head[:6] == b"LUKS\xba\xbe":
        return "luks"
    return "raw"


def check_header(path: Path, fmt: str, *, source: str | None = None) -> None:
    """The checks that need no qemu-img, done before it opens the file."""
    source = source or str(path)
    if fmt not in FORMATS:
        raise errors.InvalidImage(
            source=source, reason=f"disk format {fmt!r} is not supported "
            f"(use one of {', '.join(FORMATS)})")
    try:
        found = sniff_format(path)
        if found != fmt:
            raise errors.InvalidImage(
                source=source, reason=f"it was declared {fmt} but its "
                f"content is a {found} image")
        with open(path, "rb") as f:
            head = f.read(_HEADER)
            if fmt == "qcow2":
                _check_qcow2(head, source)
            elif fmt == "vmdk":
                _check_vmdk(f, head, source)
        _second_opinion(path, fmt, source)
    except OSError as exc:
        raise errors.InvalidImage(source=source,
                                  reason=f"cannot read it: {exc.strerror}")


def _second_opinion(path: Path, fmt: str, source: str) -> None:
    """oslo.utils' format inspector: same format, and its safety check."""
    try:
        inspector = format_inspector.detect_file_format(str(path))
    except format_inspector.ImageFormatError as exc:
        raise errors.InvalidImage(
            source=source, reason=f"its header is ambiguous or malformed "
            f"({exc})")
    name = str(inspector) if inspector is not None else "raw"
    if (fmt == "raw") != (name in _RAW_NAMES) or (
            fmt != "raw" and name != fmt):
        raise errors.InvalidImage(
            source=source, reason=f"it was declared {fmt} but its header "
            f"reads as {name}")
    try:
        if inspector is not None:
            inspector.safety_check()
    except format_inspector.SafetyCheckFailed as exc:
        failures = ", ".join(sorted(getattr(exc, "failures", None) or {}))
        raise errors.UnsafeImage(
            source=source, reason=f"it failed the format safety check "
            f"({failures or exc})")


def _check_qcow2(head: bytes, source: str) -> None:
    if len(head) < 72:
        raise errors.InvalidImage(source=source,
                                  reason="truncated qcow2 header")
    version, backing_offset, backing_size = struct.unpack_from(
        ">IQI", head, 4)
    if backing_offset or backing_size:
        raise errors.UnsafeImage(
            source=source, reason="the qcow2 image has a backing file")
    if version < 3:
        return
    if len(head) < 104:
        raise errors.InvalidImage(source=source,
                                  reason="truncated qcow2 v3 header")
    incompatible, = struct.unpack_from(">Q", head, 72)
    if incompatible & _QCOW2_INCOMPAT_DATA_FILE:
        raise errors.UnsafeImage(
            source=source, reason="the qcow2 image has an external data file")
    header_length, = struct.unpack_from(">I", head, 100)
    offset = max(header_length, 104)
    while offset + 8 <= len(head):
        kind, length = struct.unpack_from(">II", head, offset)
        if kind == 0:
            break
        if kind == _QCOW2_EXT_DATA_FILE:
            raise errors.UnsafeImage(
                source=source, reason="the qcow2 image names an external "
                "data file")
        offset += 8 + length + (-length % 8)


def _check_vmdk(f: BinaryIO, head: bytes, source: str) -> None:
    if head[:4] == b"COWD":
        return  # VMware 3 sparse: one file, no descriptor
    if head[:4] != b"KDMV":
        raise errors.UnsafeImage(
            source=source, reason="a vmdk descriptor file refers to extents "
            "in other files; upload a monolithic (single file) vmdk")
    if len(head) < 0x2C:
        raise errors.InvalidImage(source=source,
                                  reason="truncated vmdk header")
    desc_sector, desc_sectors = struct.unpack_from("<QQ", head, 0x1C)
    if not desc_sector or not desc_sectors:
        return  # no embedded descriptor: the file is its only extent
    if desc_sectors * 512 > _MAX_DESCRIPTOR:
        raise errors.InvalidImage(source=source,
                                  reason="vmdk descriptor too large")
    f.seek(desc_sector * 512)
    text = f.read(desc_sectors * 512).split(b"\0", 1)[0].decode(
        "ascii", "replace")
    create_type = None
    extents = 0
    for line in text.splitlines():
        line = line.strip()
        key, _, value = line.partition("=")
        if key.strip() == "createType":
            create_type = value.strip().strip('"')
        elif re.match(r"(RW|RDONLY|NOACCESS)\s", line):
            extents += 1
    if create_type not in _VMDK_SINGLE_FILE or extents > 1:
        raise errors.UnsafeImage(
            source=source, reason=f"the vmdk is of type {create_type} with "
            f"{extents} extents; only single-file monolithicSparse and "
            f"streamOptimized vmdk are accepted")


def info(path: Path, fmt: str, *, max_virtual_size: int | None = None,
         source: str | None = None,
         cpu_seconds: int = INFO_CPU_SECONDS,
         memory: int = MEMORY) -> QemuInfo:
    """Check ``path`` as a ``fmt`` image and return what qemu-img says of
    it; raises UnsafeImage, ImageTooLarge or InvalidImage."""
    path = Path(path)
    source = source or str(path)
    check_header(path, fmt, source=source)
    proc = confine.run(
        ["qemu-img", "info", "--output=json", "--force-share", "-f", fmt,
         str(path)], source=source, cpu_seconds=cpu_seconds, memory=memory)
    try:
        data = json.loads(proc.stdout)
        virtual_size = int(data["virtual-size"])
    except (ValueError, KeyError, TypeError):
        raise errors.InvalidImage(source=source,
                                  reason="qemu-img info gave no virtual size")
    if data.get("format") != fmt:
        raise errors.InvalidImage(
            source=source, reason=f"it was declared {fmt} but qemu-img reads "
            f"it as {data.get('format')}")
    if data.get("backing-filename") or data.get("full-backing-filename"):
        raise errors.UnsafeImage(
            source=source, reason=f"it has a backing file "
            f"({data.get('backing-filename')!r})")
    specific = (data.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise errors.UnsafeImage(
            source=source, reason=f"it has an external data file "
            f"({specific['data-file']!r})")
    if fmt == "vmdk":
        _check_extents(path, specific, source)
    if virtual_size <= 0:
        raise errors.InvalidImage(source=source,
                                  reason="its virtual size is zero")
    if max_virtual_size is not None and virtual_size > max_virtual_size:
        raise errors.ImageTooLarge(
            source=source, reason=f"its virtual size is {virtual_size} bytes",
            limit=f"{max_virtual_size} bytes")
    return QemuInfo(format=fmt, virtual_size=virtual_size,
                    actual_size=int(data.get("actual-size") or 0),
                    dirty=bool(data.get("dirty-flag")), data=data)


def _check_extents(path: Path, specific: dict[str, Any],
                   source: str) -> None:
    create_type = specific.get("create-type")
    others = [e.get("filename") for e in specific.get("extents") or []
              if not confine.same_file(str(e.get("filename")), str(path))]
    if create_type not in _VMDK_SINGLE_FILE or others:
        raise errors.UnsafeImage(
            source=source, reason=f"the vmdk ({create_type}) has extents in "
            f"other files: {others}")


def convert_cpu_seconds(virtual_size: int, cap: int | None = None) -> int:
    """Generous and proportional: 60 s plus 1 s per 16 MiB of virtual
    size (zlib-compressed qcow2 inflates at well over 100 MB/s a core),
    at most ``cap``."""
    seconds = 60 + virtual_size // (16 * MiB)
    return seconds if cap is None else min(seconds, cap)


def to_raw(path: Path, fmt: str, dest: Path, *,
           progress: Callable[[float], None] | None = None,
           virtual_size: int | None = None, source: str | None = None,
           memory: int = MEMORY, cpu_seconds: int | None = None) -> Path:
    """A raw image of ``path``: ``path`` itself when it is raw (no copy),
    else a sparse ``dest``; returns which. ``info`` must have passed."""
    path, dest = Path(path), Path(dest)
    source = source or str(path)
    if fmt == "raw":
        if progress:
            progress(1.0)
        return path
    if virtual_size is None:
        virtual_size = info(path, fmt, source=source).virtual_size
    if cpu_seconds is None:
        cpu_seconds = convert_cpu_seconds(virtual_size)
    argv = ["qemu-img", "convert", "--force-share", "-f", fmt, "-O", "raw",
            "-W", "-p", str(path), str(dest)]
    cmd = confine.command(argv, cpu_seconds=cpu_seconds, memory=memory,
                          file_size=virtual_size + MiB)
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                    stdin=subprocess.DEVNULL,
                                    env=confine.environment())
        except OSError as exc:
            raise errors.HostError(reason=f"cannot run qemu-img: {exc}")
        try:
            _follow_progress(proc.stdout, progress)
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            dest.unlink(missing_ok=True)
            raise
        finally:
            proc.stdout.close()
        if returncode != 0:
            dest.unlink(missing_ok=True)
            err.seek(0)
            stderr = err.read()[-4096:].decode("utf-8", "replace")
            raise confine.failure("qemu-img convert", returncode, stderr,
                                  source=source, cpu_seconds=cpu_seconds,
                                  memory=memory)
    if progress:
        progress(1.0)
    return dest


def _follow_progress(stream: BinaryIO,
                     progress: Callable[[float], None] | None) -> None:
    """Read qemu-img's ``-p`` output (``    (12.34/100%)\\r``)."""
    fd = stream.fileno()
    pending = b""
    while chunk := os.read(fd, 4096):
        pending += chunk
        *done, pending = re.split(rb"[\r\n]", pending)
        pending = pending[-256:]
        if progress is None:
            continue
        for piece in reversed(done):
            match = _PROGRESS.search(piece)
            if match:
                progress(min(float(match.group(1)) / 100.0, 1.0))
                break
