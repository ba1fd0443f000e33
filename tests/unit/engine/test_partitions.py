"""Partition tables (sfdisk-made, on sparse files) and superblock magic
(small mkfs'd images): nothing is mounted, no root needed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.images import partitions
from nova_lxd.engine.images.partitions import Partition

MiB = 1024 * 1024
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"

needs_sfdisk = pytest.mark.skipif(shutil.which("sfdisk") is None,
                                  reason="sfdisk (fdisk package) missing")


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def sfdisk(path: Path, *lines: str) -> Path:
    subprocess.run(["sfdisk", "-q", str(path)], input="\n".join(lines),
                   text=True, check=True, capture_output=True)
    return path


def mkfs(path: Path, fs: str, size: int = 8 * MiB) -> Path:
    tools = {"ext2": ["mkfs.ext2", "-q", "-F"], "ext3": ["mkfs.ext3", "-q",
             "-F"], "ext4": ["mkfs.ext4", "-q", "-F"],
             "xfs": ["mkfs.xfs", "-q", "-f"],
             "btrfs": ["mkfs.btrfs", "-q", "-f"],
             "swap": ["mkswap", "-q"], "vfat": ["mkfs.vfat"]}
    if shutil.which(tools[fs][0]) is None:
        pytest.skip(f"{tools[fs][0]} missing")
    sparse(path, size)
    subprocess.run([*tools[fs], str(path)], check=True, capture_output=True)
    return path


def place(image: Path, disk: Path, offset: int) -> None:
    with open(image, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(offset)
        shutil.copyfileobj(src, dst)


@needs_sfdisk
def test_gpt_table(tmp_path):
    disk = sfdisk(sparse(tmp_path / "d.raw", 64 * MiB), "label: gpt",
                  f"start=2048, size=16384, type={SWAP}",
                  f"start=18432, size=32768, type={LINUX}")
    place(mkfs(tmp_path / "root.ext4", "ext4", 16 * MiB), disk, 18432 * 512)
    parts = partitions.read_table(disk)
    assert parts == [
        Partition(1, 1 * MiB, 8 * MiB, "Linux swap", None),
        Partition(2, 9 * MiB, 16 * MiB, "Linux filesystem", "ext4"),
    ]
    assert parts[1].mountable and not parts[0].mountable
    assert parts[1].describe() == (
        "partition 2 (Linux filesystem, ext4, 16 MiB)")


@needs_sfdisk
def test_mbr_table_skips_the_extended_container(tmp_path):
    disk = sfdisk(sparse(tmp_path / "d.raw", 64 * MiB), "label: dos",
                  "start=2048, size=16384, type=82",
                  "start=18432, size=40000, type=5",
                  "start=20480, size=16384, type=83")
    place(mkfs(tmp_path / "s", "swap"), disk, 2048 * 512)
    place(mkfs(tmp_path / "x", "ext3"), disk, 20480 * 512)
    parts = partitions.read_table(disk)
    assert [(p.number, p.type_name, p.fs) for p in parts] == [
        (1, "Linux swap", "swap"), (5, "Linux", "ext3")]
    assert parts[1].start_bytes == 20480 * 512
    assert parts[1].size_bytes == 16384 * 512


@needs_sfdisk
def test_partition_beyond_the_end_of_the_file_is_refused(tmp_path):
    disk = sfdisk(sparse(tmp_path / "d.raw", 64 * MiB), "label: dos",
                  "start=2048, size=100000, type=83")
    with open(disk, "r+b") as f:
        f.truncate(32 * MiB)
    with pytest.raises(errors.InvalidImage, match="outside"):
        partitions.read_table(disk)


@needs_sfdisk
def test_no_table_makes_the_whole_file_the_candidate(tmp_path):
    image = mkfs(tmp_path / "root.ext4", "ext4")
    assert partitions.read_table(image) == [
        Partition(0, 0, 8 * MiB, "none", "ext4")]
    assert partitions.read_table(image)[0].name == "whole image"


@needs_sfdisk
def test_vfat_boot_sector_is_not_an_empty_table(tmp_path):
    image = mkfs(tmp_path / "efi.img", "vfat")
    [whole] = partitions.read_table(image)
    assert (whole.number, whole.fs, whole.mountable) == (0, "vfat", False)


@needs_sfdisk
def test_neither_table_nor_file_system(tmp_path):
    blank = sparse(tmp_path / "blank.raw", 4 * MiB)
    with pytest.raises(errors.InvalidImage, match="no partition table"):
        partitions.read_table(blank)


@pytest.mark.parametrize("fs,size", [
    ("ext2", 8 * MiB), ("ext3", 8 * MiB), ("ext4", 8 * MiB),
    ("xfs", 300 * MiB), ("btrfs", 128 * MiB), ("swap", 8 * MiB),
    ("vfat", 8 * MiB)])
def test_magic(tmp_path, fs, size):
    image = mkfs(tmp_path / f"img.{fs}", fs, size)
    assert partitions.detect_filesystem(image) == fs


def test_squashfs_magic(tmp_path):
    if shutil.which("mksquashfs") is None:
        pytest.skip("mksquashfs (squashfs-tools) missing")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hello").write_text("hi\n")
    subprocess.run(["mksquashfs", str(tree), str(tmp_path / "sq"),
                    "-quiet", "-no-progress"], check=True,
                   capture_output=True)
    assert partitions.detect_filesystem(tmp_path / "sq") == "squashfs"


def test_magic_at_an_offset_and_within_bounds(tmp_path):
    disk = sparse(tmp_path / "d.raw", 200 * MiB)
    place(mkfs(tmp_path / "b", "btrfs", 128 * MiB), disk, 4 * MiB)
    assert partitions.detect_filesystem(disk, 4 * MiB) == "btrfs"
    # The btrfs magic sits at 64 KiB: a 32 KiB partition cannot hold it.
    assert partitions.detect_filesystem(disk, 4 * MiB, 32 * 1024) is None
    assert partitions.detect_filesystem(disk, 0) is None


def test_named_but_not_mountable(tmp_path):
    lvm = sparse(tmp_path / "pv", 4 * MiB)
    with open(lvm, "r+b") as f:
        f.seek(512)
        f.write(b"LABELONE" + bytes(16) + b"LVM2 001")
    luks = sparse(tmp_path / "luks", 4 * MiB)
    with open(luks, "r+b") as f:
        f.write(b"LUKS\xba\xbe\x00\x02")
    assert partitions.detect_filesystem(lvm) == "LVM2_member"
    assert partitions.detect_filesystem(luks) == "crypto_LUKS"
    part = Partition(3, 0, 4 * MiB, "Linux LVM", "LVM2_member")
    assert not part.mountable
    assert part.describe() == "partition 3 (Linux LVM, LVM2_member, 4 MiB)"
