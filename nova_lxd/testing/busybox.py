"""A tiny system-container image from Debian's busybox-static.

The functional tests, the benchmark and the README's demo need an image
that boots in milliseconds and needs no download: ``/bin/busybox`` from
the ``busybox-static`` package, one symlink per applet, busybox init and
a boot script that says so on the console.

Both builders lay out the same tree, described once by :func:`_entries`.
The tarball is written with :mod:`tarfile` (not GNU tar), with fixed
owners, modes and mtimes, so that the same busybox binary always gives
the same bytes, and so the same sha256 fingerprint.
"""

from __future__ import annotations

import bz2
import contextlib
import dataclasses
import gzip
import io
import lzma
import os
import re
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import BinaryIO

BUSYBOX = Path("/bin/busybox")

# Every member's mtime: 2024-01-01T00:00:00Z. Fixed for stable fingerprints
# (not 0: some tools warn about "implausibly old" time stamps).
MTIME = 1704067200

COMPRESSIONS = ("none", "gz", "xz", "bz2", "zst")
_SUFFIXES = {
    ".tar": "none",
    ".tar.gz": "gz", ".tgz": "gz",
    ".tar.xz": "xz", ".txz": "xz",
    ".tar.bz2": "bz2", ".tbz2": "bz2",
    ".tar.zst": "zst", ".tzst": "zst",
}

INITTAB = """\
::sysinit:/etc/init.d/rcS
::shutdown:/bin/echo "busybox: shutting down"
"""

RCS = """\
#!/bin/sh
# Boot script of the nova-lxd busybox test image.
[ -e /proc/self ] || mount -t proc proc /proc
[ -e /sys/kernel ] || mount -t sysfs sysfs /sys
echo "nova-lxd busybox: booted $(hostname)"
"""


@dataclasses.dataclass(frozen=True)
class _Entry:
    path: str
    """Relative to the rootfs, e.g. ``bin/busybox``."""
    kind: str
    """``dir``, ``file`` or ``symlink``."""
    mode: int = 0o755
    data: bytes = b""
    target: str = ""


class BusyboxError(RuntimeError):
    """The host's busybox cannot make a bootable image."""


def build_busybox_rootfs(dest_dir: Path, *,
                         busybox: Path = BUSYBOX) -> Path:
    """Lay out a busybox root file system in ``dest_dir`` and return it.

    ``dest_dir`` must be missing or empty. Everything is owned 0:0 when
    run as root (otherwise by the caller).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if any(dest_dir.iterdir()):
        raise FileExistsError(f"{dest_dir} is not empty")
    os.chmod(dest_dir, 0o755)
    as_root = os.geteuid() == 0
    for entry in _entries(busybox):
        path = dest_dir / entry.path
        if entry.kind == "dir":
            path.mkdir()
        elif entry.kind == "file":
            path.write_bytes(entry.data)
        else:
            path.symlink_to(entry.target)
        if entry.kind != "symlink":
            os.chmod(path, entry.mode)  # not umask-dependent, keeps 1777
        if as_root:
            os.lchown(path, 0, 0)
    if as_root:
        os.lchown(dest_dir, 0, 0)
    return dest_dir


def build_busybox_tarball(dest: Path, compression: str | None = None, *,
                          busybox: Path = BUSYBOX) -> Path:
    """Write the busybox rootfs as a tarball at ``dest`` and return it.

    ``compression`` is ``none``, ``gz``, ``xz`` or ``zst``; by default it
    follows the suffix of ``dest`` (``.tar``, ``.tar.gz``/``.tgz``,
    ``.tar.xz``, ``.tar.zst``), and is ``gz`` for any other name. Members
    are named ``./bin/busybox`` and so on, owned by 0:0 numerically.
    """
    dest = Path(dest)
    by_suffix = _compression_of(dest)
    if compression is None:
        compression = by_suffix or "gz"
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, "
                         f"not {compression!r}")
    if by_suffix is not None and by_suffix != compression:
        raise ValueError(f"{dest.name} does not name a {compression} "
                         f"tarball")
    entries = _entries(busybox)
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        with open(tmp, "wb") as raw, _compressor(raw, compression) as out:
            _write_tar(out, entries)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def busybox_version(busybox: Path = BUSYBOX) -> str:
    """``1.35.0`` from the banner ``BusyBox v1.35.0 (Debian ...)``."""
    out = subprocess.run([str(busybox)], capture_output=True, text=True,
                         check=False).stdout
    match = re.match(r"BusyBox v(\d[\w.]*)", out)
    if match is None:
        raise BusyboxError(f"{busybox} printed no BusyBox version banner")
    return match.group(1)


def _compression_of(dest: Path) -> str | None:
    name = dest.name
    for suffix, compression in _SUFFIXES.items():
        if name.endswith(suffix):
            return compression
    return None


def _entries(busybox: Path) -> list[_Entry]:
    """The image's tree, parents before children, in a stable order."""
    busybox = Path(busybox)
    if not busybox.is_file():
        raise BusyboxError(f"{busybox} is missing: install Debian's "
                           f"busybox-static package")
    data = busybox.read_bytes()
    if not _is_static_elf(data):
        raise BusyboxError(f"{busybox} is not a statically linked "
                           f"executable: install busybox-static (not "
                           f"busybox)")
    applets = _applets(busybox)
    version = busybox_version(busybox)

    entries = [_Entry(d, "dir") for d in (
        "bin", "dev", "etc", "etc/init.d", "proc", "run", "sbin", "sys",
        "usr", "usr/bin", "usr/sbin", "var", "var/log")]
    entries += [
        _Entry("root", "dir", 0o700),
        _Entry("tmp", "dir", 0o1777),
        _Entry("bin/busybox", "file", 0o755, data),
        _Entry("sbin/init", "symlink", target="/bin/busybox"),
        _Entry("etc/inittab", "file", 0o644, INITTAB.encode()),
        _Entry("etc/init.d/rcS", "file", 0o755, RCS.encode()),
        _Entry("etc/passwd", "file", 0o644,
               b"root:x:0:0:root:/root:/bin/sh\n"),
        _Entry("etc/group", "file", 0o644, b"root:x:0:\n"),
        _Entry("etc/hostname", "file", 0o644, b"busybox\n"),
        _Entry("etc/os-release", "file", 0o644, (
            f'NAME="BusyBox"\n'
            f"ID=busybox\n"
            f"VERSION_ID={version}\n"
            f'PRETTY_NAME="BusyBox {version} (nova-lxd test image)"\n'
        ).encode()),
    ]
    entries += [_Entry(f"bin/{name}", "symlink", target="/bin/busybox")
                for name in applets]
    return sorted(entries, key=lambda e: e.path.split("/"))


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], capture_output=True,
                         text=True, check=True).stdout
    names = {line.strip() for line in out.splitlines()}
    # "busybox" itself would replace the binary with a link to itself.
    names -= {"", "busybox"}
    return sorted(n for n in names if "/" not in n and n not in (".", ".."))


def _is_static_elf(data: bytes) -> bool:
    """True for an ELF executable without a PT_INTERP (dynamic loader)."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (
            1, 2):
        return False
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
    for i in range(phnum):
        p_type, = struct.unpack_from(endian + "I", data,
                                     phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def _tarinfo(entry: _Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo("." if entry.path == "." else f"./{entry.path}")
    info.mode = entry.mode
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""  # like tar --numeric-owner
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.mode = 0o777
        info.linkname = entry.target
    else:
        info.type = tarfile.REGTYPE
        info.size = len(entry.data)
    return info


def _write_tar(out: BinaryIO, entries: list[_Entry]) -> None:
    with tarfile.open(fileobj=out, mode="w|",
                      format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo(_Entry(".", "dir")))
        for entry in entries:
            info = _tarinfo(entry)
            if entry.kind == "file":
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)


def _compressor(raw: BinaryIO,
                compression: str) -> contextlib.AbstractContextManager:
    """A writer compressing into ``raw``; closing it leaves ``raw`` open."""
    if compression == "gz":
        # No file name and a fixed mtime in the gzip header: stable bytes.
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
    if compression == "xz":
        return lzma.LZMAFile(raw, "wb", preset=6)
    if compression == "bz2":
        return bz2.BZ2File(raw, "wb")
    if compression == "zst":
        import zstandard

        return zstandard.ZstdCompressor(level=10).stream_writer(
            raw, closefd=False)
    return contextlib.nullcontext(raw)
