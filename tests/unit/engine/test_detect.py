"""Content detection of uploads, and the cross-check with Glance's formats."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.images import detect
from nova_lxd.engine.images.detect import Detected
from nova_lxd.testing.busybox import build_busybox_tarball
from tests.unit.engine.test_extract import (
    COMPRESSIONS,
    build_tar,
    compress,
    entry,
)

NAMES = {"none": None, "gz": "gzip", "xz": "xz", "bz2": "bzip2",
         "zst": "zstd"}


def rootfs_entries() -> list:
    return [entry("./", "d"), entry("./bin/", "d"),
            entry("./bin/sh", "f", b"#!/bin/true\n", mode=0o755),
            entry("./etc/hostname", "f", b"box\n")]


def unified_entries(metadata_first: bool = True) -> list:
    meta = entry("metadata.yaml", "f",
                 b"architecture: x86_64\ncreation_date: 1700000000\n")
    rootfs = [entry("rootfs", "d"), entry("rootfs/etc", "d"),
              entry("rootfs/etc/hostname", "f", b"box\n")]
    templates = [entry("templates", "d"),
                 entry("templates/hostname.tpl", "f", b"{{ name }}\n")]
    if metadata_first:
        return [meta, *rootfs, *templates]
    return [*rootfs, *templates, meta]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def at(offset: int, magic: bytes, size: int = 70_000) -> bytes:
    data = bytearray(size)
    data[offset:offset + len(magic)] = magic
    return bytes(data)


# -- kinds and compressions ------------------------------------------------

@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_root_tarball_in_every_compression(tmp_path, kind):
    src = build_tar(tmp_path / "img", rootfs_entries(), kind)
    found = detect.detect(src)
    assert (found.kind, found.compression, found.disk_format) == (
        "tar", kind, None)
    assert found.what == "ustar"  # pax archives carry the ustar magic
    assert found.source == str(src)


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_unified_tarball_in_every_compression(tmp_path, kind):
    src = build_tar(tmp_path / "img", unified_entries(), kind)
    found = detect.detect(src)
    assert (found.kind, found.compression) == ("unified", kind)


def test_busybox_tarball(tmp_path):
    src = build_busybox_tarball(tmp_path / "bb.tar.xz")
    assert detect.detect(src) == Detected("tar", "xz", what="ustar",
                                          source=str(src))


def test_gnu_and_v7_headers(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w",
                      format=tarfile.GNU_FORMAT) as tar:
        for info, data in rootfs_entries():
            tar.addfile(info, data)
    gnu = write(tmp_path / "gnu.tar", buf.getvalue())
    assert detect.detect(gnu).what == "gnu"

    # v7: no magic at all, only the checksum vouches for the header.
    info, data = entry("etc/hostname", "f", b"box\n")
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    block[257:265] = bytes(8)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    v7 = write(tmp_path / "v7.tar",
               bytes(block) + b"box\n".ljust(512, b"\0") + bytes(1024))
    found = detect.detect(v7)
    assert (found.kind, found.what) == ("tar", "v7")
    # One flipped bit and the checksum no longer vouches for it.
    block[0] ^= 1
    bad = write(tmp_path / "bad.tar", bytes(block) + bytes(1536))
    with pytest.raises(errors.InvalidImage, match="neither a tarball"):
        detect.detect(bad)


def test_unified_with_metadata_after_rootfs(tmp_path):
    src = build_tar(tmp_path / "img.tar.gz",
                    unified_entries(metadata_first=False), "gz")
    assert detect.detect(src).kind == "unified"


def members_then_garbage(path: Path, entries: list) -> Path:
    """The members with no end marker, then a block that is no header."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w",
                      format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, data)
        end = tar.offset
    return write(path, buf.getvalue()[:end] + b"\xff" * 512)


def test_unified_is_known_without_reading_the_rest(tmp_path):
    # LXD's order: metadata.yaml, then rootfs/; what follows is not read.
    src = members_then_garbage(tmp_path / "u.tar", unified_entries()[:2])
    assert detect.detect(src).kind == "unified"
    # The same garbage after a plain rootfs is read, and refused.
    plain = members_then_garbage(tmp_path / "p.tar", rootfs_entries())
    with pytest.raises(errors.InvalidImage, match="broken tar archive"):
        detect.detect(plain)


def test_metadata_yaml_below_the_top_level_is_not_unified(tmp_path):
    src = build_tar(tmp_path / "img.tar", [
        *rootfs_entries(), entry("rootfs", "d"),
        entry("etc/metadata.yaml", "f", b"architecture: x86_64\n")])
    assert detect.detect(src).kind == "tar"


def test_rootfs_without_metadata_is_explained(tmp_path):
    src = build_tar(tmp_path / "img.tar", [
        entry("rootfs", "d"), entry("rootfs/etc/hostname", "f", b"x")])
    with pytest.raises(errors.InvalidImage, match="tar -C rootfs -c ."):
        detect.detect(src)


def test_metadata_tarball_alone_is_explained(tmp_path):
    src = build_tar(tmp_path / "img.tar", [
        unified_entries()[0], entry("templates/x.tpl", "f", b"x")])
    with pytest.raises(errors.InvalidImage, match="metadata tarball"):
        detect.detect(src)


def test_tar_wins_over_disk_magic_in_its_data(tmp_path):
    # The first member's data sits at 512: a GPT signature there is data.
    src = build_tar(tmp_path / "img.tar", [
        entry("gpt.bin", "f", b"EFI PART" + bytes(2000))])
    assert detect.detect(src).kind == "tar"


# -- disks -----------------------------------------------------------------

@pytest.mark.parametrize("data,fmt,what", [
    (b"QFI\xfb\0\0\0\3" + bytes(600), "qcow2", "qcow2 header"),
    (b"KDMV\1\0\0\0" + bytes(600), "vmdk", "sparse extent header"),
    (b"# Disk DescriptorFile\nversion=1\n", "vmdk", "text descriptor"),
    (b"vhdxfile" + bytes(600), "vhdx", "vhdx file identifier"),
    (at(64, b"\x7f\x10\xda\xbe", 600), "vdi", "VirtualBox signature"),
    (at(510, b"\x55\xaa", 4096), "raw", "MBR partition table"),
    (at(510, b"\x55\xaa") [:512] + b"EFI PART" + bytes(600), "raw",
     "GPT partition table"),
    (at(1080, b"\x53\xef"), "raw", "ext2/3/4 file system"),
    (at(0, b"XFSB"), "raw", "xfs file system"),
    (at(65600, b"_BHRfS_M"), "raw", "btrfs file system"),
    (at(0, b"hsqs"), "raw", "squashfs file system"),
])
def test_disk_signatures(tmp_path, data, fmt, what):
    found = detect.detect(write(tmp_path / "disk.img", data))
    assert (found.kind, found.disk_format, found.what) == ("disk", fmt, what)
    assert found.compression == "none"
    assert fmt in found.describe()


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="no qemu-img")
@pytest.mark.parametrize("fmt", ["qcow2", "vmdk", "vdi", "vhdx"])
def test_images_made_by_qemu_img(tmp_path, fmt):
    path = tmp_path / f"disk.{fmt}"
    subprocess.run(["qemu-img", "create", "-f", fmt, str(path), "16M"],
                   check=True, capture_output=True)
    assert detect.detect(path).disk_format == fmt


@pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="no mkfs.ext4")
def test_real_ext4_file_system(tmp_path):
    path = tmp_path / "root.ext4"
    with open(path, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True,
                   capture_output=True)
    found = detect.detect(path)
    assert (found.disk_format, found.what) == ("raw",
                                               "ext2/3/4 file system")


# -- refusals ----------------------------------------------------------------

@pytest.mark.parametrize("data,seen", [
    (b"", "empty"),
    (bytes(70_000), "starts with zeros"),
    (b"\x7fELF\2\1\1" + bytes(600), "ELF executable"),
    (b"PK\3\4" + bytes(600), "zip archive"),
    (at(32769, b"CD001"), "ISO 9660"),
    (b"conectix" + bytes(600), "VHD disk image"),
    (b"hello, I am text\n" * 50, "starts with b'hello, I am text"),
    (gzip.compress(b"plain text, not a tar " * 100),
     "gzip-compressed data that is not a tar"),
    (lzma.compress(at(510, b"\x55\xaa", 4096)),
     r"xz-compressed raw disk image \(MBR partition table\): decompress "
     r"it \(xz -d\)"),
    (gzip.compress(b"QFI\xfb" + bytes(600)), "gzip-compressed qcow2"),
    (gzip.compress(bytes(4096)), "gzip-compressed zeros"),
    (b"\x1f\x8b\x08\0garbage" * 10, "corrupt gz"),
])
def test_unknown_content_is_refused_naming_what_was_seen(tmp_path, data,
                                                          seen):
    src = write(tmp_path / "upload", data)
    with pytest.raises(errors.InvalidImage, match=seen) as exc:
        detect.detect(src)
    assert str(src) in str(exc.value)


def test_fixed_vhd_footer_is_named(tmp_path):
    src = write(tmp_path / "disk.vhd", bytes(4096) + b"conectix"
                + bytes(504))
    with pytest.raises(errors.InvalidImage, match="VHD"):
        detect.detect(src)


def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(errors.InvalidImage, match="not a regular file"):
        detect.detect(tmp_path / "fifo")


def test_broken_tar_after_a_good_header(tmp_path):
    data = build_tar(tmp_path / "img.tar", rootfs_entries()).read_bytes()
    src = write(tmp_path / "cut.tar", data[:512 + 700] + b"\x01" * 512)
    with pytest.raises(errors.InvalidImage, match="tar archive"):
        detect.detect(src)


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_truncated_compressed_tar(tmp_path, kind):
    raw = build_tar(tmp_path / "img.tar", rootfs_entries()
                    + [entry("big", "f", os.urandom(300_000))]).read_bytes()
    packed = compress(raw, kind)
    src = write(tmp_path / "cut", packed[: len(packed) // 2])
    with pytest.raises(errors.InvalidImage, match="truncated"):
        detect.detect(src)


# -- cross-check with Glance -------------------------------------------------

TAR_GZ = Detected("tar", "gz", what="ustar", source="up")
TAR = Detected("tar", "none", what="ustar", source="up")
UNIFIED = Detected("unified", "xz", what="ustar", source="up")
QCOW2 = Detected("disk", disk_format="qcow2", what="qcow2 header",
                 source="up")
RAW = Detected("disk", disk_format="raw", what="GPT partition table",
               source="up")
DISKS = {fmt: Detected("disk", disk_format=fmt, what="x", source="up")
         for fmt in ("qcow2", "vmdk", "vdi", "vhdx", "raw")}


@pytest.mark.parametrize("found,disk_format,container_format", [
    (TAR, None, None),
    (TAR_GZ, "raw", "bare"),  # the usual nova-lxd upload
    (TAR_GZ, "raw", "compressed"),
    (TAR, "root-tar", "bare"),
    (UNIFIED, "raw", None),
    (UNIFIED, "root-tar", "bare"),
    (QCOW2, None, "bare"),
    (RAW, "raw", "bare"),
    (QCOW2, "QCOW2", "BARE"),  # Glance's values, whatever the case
    *[(d, fmt, "bare") for fmt, d in DISKS.items()],
])
def test_cross_check_accepts(found, disk_format, container_format):
    detect.cross_check(found, disk_format=disk_format,
                       container_format=container_format)


@pytest.mark.parametrize("found,disk_format,says", [
    (TAR_GZ, "qcow2", ["Glance says qcow2 but the file is a gzip-compressed "
                       "tar; re-upload with --disk-format raw"]),
    (TAR, "vmdk", ["Glance says vmdk but the file is an uncompressed tar; "
                   "re-upload with --disk-format raw"]),
    (UNIFIED, "vdi", ["Glance says vdi but the file is an LXD unified "
                      "tarball (xz-compressed); re-upload with "
                      "--disk-format raw"]),
    (TAR, "vhdx", ["--disk-format raw"]),
    (QCOW2, "raw", ["Glance says raw but the file is a qcow2 disk image "
                    "(qcow2 header); re-upload with --disk-format qcow2"]),
    (QCOW2, "root-tar", ["Glance says root-tar but the file is a qcow2 "
                         "disk image (qcow2 header); re-upload with "
                         "--disk-format qcow2"]),
    (RAW, "qcow2", ["re-upload with --disk-format raw"]),
    (DISKS["vmdk"], "vdi", ["re-upload with --disk-format vmdk"]),
    (DISKS["vhdx"], "vmdk", ["re-upload with --disk-format vhdx"]),
    (QCOW2, "iso", ["disk format iso, an optical disc image",
                    "not a container image"]),
    (TAR, "ploop", ["disk format ploop", "not a container image"]),
    (TAR, "aki", ["disk format aki, an Amazon kernel image, not a "
                  "container image"]),
    (TAR, "ari", ["disk format ari, an Amazon ramdisk image, not a "
                  "container image"]),
    (RAW, "ami", ["disk format ami, an Amazon machine image, not a "
                  "container image"]),
    (RAW, "vhd", ["disk format vhd", "qemu-img convert -O qcow2"]),
    (TAR, "floppy", ["unknown disk format 'floppy'"]),
])
def test_cross_check_refuses_disk_formats(found, disk_format, says):
    with pytest.raises(errors.InvalidImage) as exc:
        detect.cross_check(found, disk_format=disk_format,
                           container_format="bare")
    message = str(exc.value)
    assert message.startswith("Invalid image up: ")
    for words in says:
        assert words in message


@pytest.mark.parametrize("container_format,message", [
    ("ovf", "OVF package: upload the disk image inside it"),
    ("ova", "OVA archive"),
    ("docker", "Docker image.*docker export"),
    ("aki", "Amazon kernel image, not a container image"),
    ("ari", "Amazon ramdisk image, not a container image"),
    ("ami", "Amazon machine image, not a container image"),
    ("lxd", "unknown container format 'lxd'; upload with "
     "--container-format bare"),
])
def test_cross_check_refuses_container_formats(container_format, message):
    for found in (TAR_GZ, QCOW2):
        with pytest.raises(errors.InvalidImage, match=message):
            detect.cross_check(found, disk_format="raw",
                               container_format=container_format)


def test_describe():
    assert TAR_GZ.describe() == "a gzip-compressed tar"
    assert TAR.describe() == "an uncompressed tar"
    assert Detected("tar", "zst").describe() == "a zstd-compressed tar"
    assert Detected("tar", "bz2").describe() == "a bzip2-compressed tar"
    assert Detected("unified", "none").describe() == "an LXD unified tarball"
    assert RAW.describe() == "a raw disk image (GPT partition table)"
