"""Fixtures for the disk-image tests: a busybox rootfs as file-system
images (ext4, xfs, btrfs, squashfs) and partitioned disks (MBR, GPT) in
every format, all sparse and built once per session."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from nova_lxd.testing import disks
from nova_lxd.testing.busybox import build_busybox_rootfs

FILESYSTEMS = ("ext4", "xfs", "btrfs", "squashfs")


@pytest.fixture(scope="session")
def disk_rootfs(tmp_path_factory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("disk-bb") / "root")


@pytest.fixture(scope="session")
def fs_image(disk_rootfs, tmp_path_factory) -> Callable[[str], Path]:
    """``fs_image('xfs')``: the busybox rootfs as that file system."""
    work = tmp_path_factory.mktemp("disk-fs")
    built: dict[str, Path] = {}

    def build(fs: str) -> Path:
        if fs not in built:
            built[fs] = disks.make_filesystem(disk_rootfs,
                                              work / f"root.{fs}", fs)
        return built[fs]
    return build


@pytest.fixture(scope="session")
def disk_image(fs_image, tmp_path_factory
               ) -> Callable[[str, str | None, str, str], Path]:
    """``disk_image('gpt', 'swap', 'ext4', 'qcow2')``: a disk whose
    partition 2 holds the rootfs and partition 1 a small swap or vfat."""
    work = tmp_path_factory.mktemp("disk-disks")
    built: dict[tuple, Path] = {}

    def build(table: str, filler: str | None, fs: str, fmt: str) -> Path:
        key = (table, filler, fs, fmt)
        if key not in built:
            stem = "-".join(str(k) for k in key)
            raw = disks.make_partitioned_disk(
                fs_image(fs), work / f"{stem}.raw", table, filler=filler)
            built[key] = (raw if fmt == "raw" else
                          disks.convert(raw, work / f"{stem}.{fmt}", fmt))
            if fmt != "raw":
                raw.unlink()
        return built[key]
    return build


@pytest.fixture
def workdir(tmp_path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def tar_members(tarball: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """Every member of a tar.zst, with the bytes of small regular files."""
    members = {}
    with open(tarball, "rb") as raw:
        data = zstandard.ZstdDecompressor().stream_reader(raw).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            content = b""
            if info.isreg() and info.size < 65536:
                content = tar.extractfile(info).read()
            members[info.name] = (info, content)
    return members


def assert_busybox_root(tarball: Path) -> dict:
    members = tar_members(tarball)
    init, _ = members["./sbin/init"]
    assert init.issym() and init.linkname == "/bin/busybox"
    _, os_release = members["./etc/os-release"]
    assert b"ID=busybox" in os_release
    busybox, _ = members["./bin/busybox"]
    assert busybox.isreg() and busybox.size > 100_000
    assert busybox.uid == 0 and busybox.uname == ""
    return members


def attached_loops(under: Path) -> list[str]:
    """Loop devices whose backing file is under ``under`` (losetup)."""
    out = subprocess.run(["losetup", "--list", "--json"],
                         capture_output=True, text=True, check=True).stdout
    devices = json.loads(out or '{"loopdevices": []}')["loopdevices"]
    base = str(under.resolve())
    return [d["name"] for d in devices
            if (d.get("back-file") or "").startswith(base)]


def host_mounts_under(under: Path) -> list[str]:
    base = str(under.resolve())
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if base in line]
