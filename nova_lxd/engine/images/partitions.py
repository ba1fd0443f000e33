"""The partitions of a raw disk image and the file systems on them.

``read_table`` reads an MBR or GPT table with ``sfdisk -J`` (confined: it
parses tenant bytes) on the plain file: no loop device, no ``losetup -P``
(which makes no partition nodes on this host) and no device-mapper. A file
without a table is one candidate covering the whole file, so bare
file-system images work too.

``detect_filesystem`` reads superblock magic numbers straight from the
file. The ones a root is archived from are ext2/3/4, xfs, btrfs and
squashfs; swap, vfat, NTFS, exFAT, LVM, LUKS and ISO 9660 are recognised
only so that they can be named when they are skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
from pathlib import Path

from nova_lxd.engine import errors
from nova_lxd.engine.images import confine

MiB = 1024 * 1024

MOUNTABLE = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "squashfs"})
"""File systems a root can be archived from."""

MAX_PARTITIONS = 256
_SFDISK_CPU_SECONDS = 10
_SFDISK_MEMORY = 256 * MiB
_EXTENDED = frozenset({"5", "f", "85"})
_NO_TABLE = "does not contain a recognized partition table"

_MBR_TYPES = {
    "83": "Linux", "82": "Linux swap", "8e": "Linux LVM",
    "fd": "Linux RAID", "ef": "EFI System", "ee": "GPT protective",
    "1": "FAT12", "4": "FAT16", "6": "FAT16", "b": "W95 FAT32",
    "c": "W95 FAT32 (LBA)", "e": "W95 FAT16 (LBA)", "7": "NTFS/exFAT",
    "a5": "FreeBSD", "a6": "OpenBSD", "a9": "NetBSD", "da": "Non-FS data",
}
_GPT_TYPES = {
    "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
    "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
    "44479540-F297-41B2-9AF7-D131D5F0458A": "Linux root (x86)",
    "B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux root (ARM-64)",
    "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3": "Linux root (ARM)",
    "72EC70A6-CF74-40E6-BD49-4BDA08E8F224": "Linux root (RISC-V-64)",
    "8484680C-9521-48C6-9C11-B0720656F69E": "Linux /usr (x86-64)",
    "4D21B016-B534-45C2-A9FB-5C16E091FD2D": "Linux /var",
    "933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux /home",
    "3B8F8425-20E0-4F3B-907F-1A25A76F98E8": "Linux /srv",
    "BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
    "E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
    "A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
    "CA7D7CCB-63ED-4C53-861C-1742536059CC": "Linux LUKS",
    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
    "21686148-6449-6E6F-744E-656564454649": "BIOS boot",
    "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
    "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
}

# ext feature bits that ext2 and ext3 lack: (incompat, ro_compat).
_EXT4_INCOMPAT = (0x0040 | 0x0080 | 0x0100 | 0x0200 | 0x0400 | 0x1000
                  | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000)
_EXT4_RO_COMPAT = 0x0008 | 0x0010 | 0x0020 | 0x0040 | 0x0400 | 0x1000
_EXT3_COMPAT_JOURNAL = 0x0004


@dataclasses.dataclass(frozen=True)
class Partition:
    number: int
    """1-based partition number; 0 for a whole image without a table."""
    start_bytes: int
    size_bytes: int
    type_name: str
    fs: str | None

    @property
    def name(self) -> str:
        return "whole image" if self.number == 0 else (
            f"partition {self.number}")

    def describe(self) -> str:
        """E.g. ``partition 2 (Linux filesystem, ext4, 360 MiB)``."""
        what = [self.type_name] if self.number else []
        what.append(self.fs or "no known file system")
        what.append(f"{self.size_bytes / MiB:.0f} MiB")
        return f"{self.name} ({', '.join(what)})"

    @property
    def mountable(self) -> bool:
        return self.fs in MOUNTABLE


def read_table(raw_path: Path, *, source: str | None = None
               ) -> list[Partition]:
    """The partitions of ``raw_path`` (extended-partition containers left
    out), or the whole file as partition 0 when it has no table. Raises
    InvalidImage for a partition outside the file, or when there is
    neither a table nor a known file system."""
    raw_path = Path(raw_path)
    source = source or str(raw_path)
    file_size = raw_path.stat().st_size
    proc = confine.run(["sfdisk", "-J", str(raw_path)], source=source,
                       cpu_seconds=_SFDISK_CPU_SECONDS,
                       memory=_SFDISK_MEMORY, check=False)
    table = None
    if proc.returncode == 0:
        try:
            table = json.loads(proc.stdout)["partitiontable"]
        except (ValueError, KeyError, TypeError):
            table = None
    found = [] if table is None else _partitions(raw_path, table,
                                                   file_size, source)
    if found:
        return found
    # No table, or an empty one (a FAT boot sector reads as an empty MBR).
    fs = detect_filesystem(raw_path, 0, file_size)
    if fs is None:
        why = confine.last_line(proc.stderr) or "an empty partition table"
        if _NO_TABLE in why:
            why = "no partition table"
        raise errors.InvalidImage(
            source=source, reason=f"{why}, and no known file system at its "
            f"start")
    return [Partition(0, 0, file_size, "none", fs)]


def _partitions(raw_path: Path, table: dict, file_size: int,
                source: str) -> list[Partition]:
    try:
        sector = int(table.get("sectorsize") or 512)
        label = table.get("label")
        entries = list(table.get("partitions") or [])
    except (AttributeError, TypeError, ValueError):
        raise errors.InvalidImage(source=source,
                                  reason="unreadable partition table")
    if len(entries) > MAX_PARTITIONS:
        raise errors.InvalidImage(
            source=source, reason=f"{len(entries)} partitions (at most "
            f"{MAX_PARTITIONS} are read)")
    found = []
    for index, entry in enumerate(entries, 1):
        try:
            kind = str(entry.get("type", "")).lower()
            start = int(entry["start"]) * sector
            size = int(entry["size"]) * sector
        except (AttributeError, KeyError, TypeError, ValueError):
            raise errors.InvalidImage(source=source,
                                      reason="unreadable partition table")
        number = _number(str(entry.get("node", "")), index)
        if size <= 0 or (label == "dos" and kind in _EXTENDED):
            continue
        if start <= 0 or start + size > file_size:
            raise errors.InvalidImage(
                source=source, reason=f"partition {number} (bytes {start} "
                f"to {start + size}) lies outside the {file_size}-byte "
                f"disk")
        type_name = (_GPT_TYPES.get(kind.upper(), kind.upper())
                     if label == "gpt" else
                     _MBR_TYPES.get(kind, f"type 0x{kind}"))
        found.append(Partition(number, start, size, type_name,
                               detect_filesystem(raw_path, start, size)))
    return found


def _number(node: str, index: int) -> int:
    match = re.search(r"(\d+)$", node)
    return int(match.group(1)) if match else index


def detect_filesystem(path: Path, offset: int = 0,
                      size: int | None = None) -> str | None:
    """The file system whose superblock is at ``offset`` of ``path``, by
    its magic number, looking no further than ``size`` bytes (default:
    the end of the file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if size is None:
            size = os.fstat(fd).st_size - offset
        return _detect(fd, offset, offset + size)
    finally:
        os.close(fd)


def _detect(fd: int, offset: int, end: int) -> str | None:
    def at(pos: int, length: int) -> bytes:
        if offset + pos + length > end:
            return b""
        return os.pread(fd, length, offset + pos)

    head = at(0, 4096)
    if head[:4] == b"XFSB":
        return "xfs"
    if head[:4] == b"hsqs":
        return "squashfs"
    if head[:6] == b"LUKS\xba\xbe":
        return "crypto_LUKS"
    if head[4086:4096] in (b"SWAPSPACE2", b"SWAP-SPACE"):
        return "swap"
    for sector in range(4):
        label = head[sector * 512:sector * 512 + 32]
        if label[:8] == b"LABELONE" and label[24:32] == b"LVM2 001":
            return "LVM2_member"
    if at(0x10040, 8) == b"_BHRfS_M":
        return "btrfs"
    sb = at(1024, 1024)
    if sb[56:58] == b"\x53\xef":
        compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
        if incompat & _EXT4_INCOMPAT or ro_compat & _EXT4_RO_COMPAT:
            return "ext4"
        return "ext3" if compat & _EXT3_COMPAT_JOURNAL else "ext2"
    if at(0x8001, 5) == b"CD001":
        return "iso9660"
    if head[510:512] == b"\x55\xaa":
        if head[3:11] == b"NTFS    ":
            return "ntfs"
        if head[3:11] == b"EXFAT   ":
            return "exfat"
        if head[0x36:0x3B] in (b"FAT12", b"FAT16") or (
                head[0x52:0x57] == b"FAT32"):
            return "vfat"
    return None
