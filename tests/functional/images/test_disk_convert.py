"""convert_disk on real images: every file system, table and format; the
hostile ones refused; and nothing left mounted or attached, even when the
converting process is SIGKILLed mid-way."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import nova_lxd
from nova_lxd.engine import errors
from nova_lxd.engine.images import disk, loop
from nova_lxd.testing import disks
from nova_lxd.testing.canary import Canary

from .conftest import (
    assert_busybox_root,
    attached_loops,
    host_mounts_under,
    tar_members,
)

GiB = 1024 ** 3
LIMITS = {"max_virtual_size": 4 * GiB, "max_unpacked_size": 1 * GiB}


def convert(source: Path, fmt: str, tmp_path: Path, workdir: Path,
            **kwargs) -> tuple[disk.DiskResult, Path, list]:
    out = tmp_path / "rootfs.tar.zst"
    stages: list[tuple[str, float]] = []
    kwargs = {**LIMITS, **kwargs}
    result = disk.convert_disk(
        source, fmt, out, workdir=workdir,
        progress=lambda stage, f: stages.append((stage, f)), **kwargs)
    assert sorted(os.listdir(workdir)) == [], "raw file or mount point left"
    assert attached_loops(workdir) == [] and attached_loops(source.parent) \
        == []
    return result, out, stages


@pytest.mark.parametrize("fs", ["ext2", "ext3", "ext4", "xfs", "btrfs",
                                "squashfs"])
def test_whole_filesystem_image(fs_image, tmp_path, workdir, fs):
    result, out, stages = convert(fs_image(fs), "raw", tmp_path, workdir,
                                  inspect=lambda root: {"top": sorted(
                                      os.listdir(root))})
    assert_busybox_root(out)
    assert (result.partition, result.filesystem) == ("whole image", fs)
    assert "sbin/init" in result.chosen_reason
    assert {"bin", "etc", "sbin"} <= set(result.inspected["top"])
    assert result.tar_bytes > 1_000_000
    assert stages[-1] == ("archive", 1.0)


@pytest.mark.parametrize("table,filler,fs,fmt", [
    ("gpt", "swap", "ext4", "qcow2"),
    ("dos", "vfat", "xfs", "vmdk"),
    ("gpt", "vfat", "btrfs", "vdi"),
    ("dos", "swap", "squashfs", "vhdx"),
    ("dos", "swap", "ext4", "raw"),
])
def test_partitioned_disk(disk_image, tmp_path, workdir, table, filler, fs,
                          fmt):
    source = disk_image(table, filler, fs, fmt)
    result, out, stages = convert(source, fmt, tmp_path, workdir)
    assert_busybox_root(out)
    assert (result.partition, result.filesystem) == ("partition 2", fs)
    assert result.chosen_reason.startswith("partition 2 ")
    assert "partition 1" in result.chosen_reason  # named as skipped
    assert ("convert", 1.0) in stages and stages[-1] == ("archive", 1.0)


def test_root_with_init_beats_a_larger_data_partition(disk_rootfs, tmp_path,
                                                      workdir):
    data = tmp_path / "data"
    (data / "srv").mkdir(parents=True)
    (data / "srv/readme").write_text("data only\n")
    big = disks.make_filesystem(data, tmp_path / "data.ext4", "ext4")
    with open(big, "r+b") as f:
        f.truncate(96 * 1024 * 1024)
    subprocess.run(["resize2fs", "-f", str(big)], check=True,
                   capture_output=True)
    root = disks.make_filesystem(disk_rootfs, tmp_path / "root.xfs", "xfs")
    raw = _two_partition_disk(tmp_path / "two.raw", big, root)
    result, out, _ = convert(raw, "raw", tmp_path, workdir)
    assert (result.partition, result.filesystem) == ("partition 2", "xfs")
    assert "init" in result.chosen_reason
    assert "partition 1 holds no init" in result.chosen_reason
    assert_busybox_root(out)


def _two_partition_disk(dest: Path, first: Path, second: Path) -> Path:
    mib = 1024 * 1024
    size1 = -(-first.stat().st_size // mib) * mib
    size2 = -(-second.stat().st_size // mib) * mib
    with open(dest, "wb") as f:
        f.truncate(mib + size1 + size2 + mib)
    linux = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    subprocess.run(["sfdisk", "-q", str(dest)], text=True, check=True,
                   capture_output=True, input=(
                       f"label: gpt\nstart=2048, size={size1 // 512}, "
                       f"type={linux}\nstart={(mib + size1) // 512}, "
                       f"size={size2 // 512}, type={linux}\n"))
    for image, offset in ((first, mib), (second, mib + size1)):
        subprocess.run(["dd", f"if={image}", f"of={dest}", "bs=1M",
                        f"seek={offset // mib}", "conv=notrunc,sparse",
                        "status=none"], check=True)
    return dest


def test_root_in_a_top_level_directory(disk_rootfs, tmp_path, workdir):
    """Like Ubuntu's btrfs ``@`` subvolume: the root is one level down."""
    tree = tmp_path / "tree"
    shutil.copytree(disk_rootfs, tree / "@", symlinks=True)
    (tree / "@home").mkdir()
    image = disks.make_filesystem(tree, tmp_path / "at.ext4", "ext4")
    result, out, _ = convert(image, "raw", tmp_path, workdir)
    assert "in @/" in result.chosen_reason
    members = assert_busybox_root(out)
    assert "./@home" not in members and "./@" not in members


def test_multi_device_btrfs_refused(tmp_path, workdir):
    devices = [tmp_path / "dev1", tmp_path / "dev2"]
    for dev in devices:
        with open(dev, "wb") as f:
            f.truncate(128 * 1024 * 1024)
    subprocess.run(["mkfs.btrfs", "-q", "-f", "-d", "single", "-m",
                    "single", *map(str, devices)], check=True,
                   capture_output=True)
    with pytest.raises(errors.UnsafeImage, match="2 devices"):
        convert(devices[0], "raw", tmp_path, workdir)


def test_capabilities_survive(disk_rootfs, tmp_path, workdir):
    tree = tmp_path / "tree"
    shutil.copytree(disk_rootfs, tree, symlinks=True)
    (tree / "bin/pinger").write_bytes(b"#!/bin/sh\n")
    subprocess.run(["setcap", "cap_net_raw+ep", str(tree / "bin/pinger")],
                   check=True)
    image = disks.make_filesystem(tree, tmp_path / "caps.ext4", "ext4")
    _, out, _ = convert(image, "raw", tmp_path, workdir)
    info, _ = tar_members(out)["./bin/pinger"]
    assert "SCHILY.xattr.security.capability" in info.pax_headers


def test_backing_file_refused_without_opening_it(tmp_path, workdir):
    secret = tmp_path / "secret"
    secret.write_bytes(b"host data\n" * 100)
    image = tmp_path / "b.qcow2"
    for backing in (secret, Path("/etc/shadow")):
        subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b",
                        str(backing), "-F", "raw", str(image), "64M"],
                       check=True, capture_output=True)
        with Canary(secret) as canary:
            with pytest.raises(errors.UnsafeImage, match="backing file"):
                convert(image, "qcow2", tmp_path, workdir)
            assert not canary.touched, canary.events
    assert not (tmp_path / "rootfs.tar.zst").exists()


def test_vmdk_descriptor_with_an_extent_file_refused(tmp_path, workdir):
    extent = tmp_path / "extent-flat.vmdk"
    extent.write_bytes(bytes(1024 * 1024))
    descriptor = tmp_path / "d.vmdk"
    descriptor.write_text(
        '# Disk DescriptorFile\nversion=1\nCID=fffffffe\n'
        'parentCID=ffffffff\ncreateType="monolithicFlat"\n\n'
        f'RW 2048 FLAT "{extent}" 0\n')
    with Canary(extent) as canary:
        with pytest.raises(errors.UnsafeImage, match="descriptor"):
            convert(descriptor, "vmdk", tmp_path, workdir)
        assert not canary.touched, canary.events


def test_declared_format_must_match(disk_image, tmp_path, workdir):
    qcow2 = disk_image("gpt", "swap", "ext4", "qcow2")
    with pytest.raises(errors.InvalidImage, match="declared raw"):
        convert(qcow2, "raw", tmp_path, workdir)
    with pytest.raises(errors.InvalidImage, match="declared vdi"):
        convert(qcow2, "vdi", tmp_path, workdir)


def test_virtual_size_bound(disk_image, tmp_path, workdir):
    source = disk_image("gpt", "swap", "ext4", "qcow2")
    with pytest.raises(errors.ImageTooLarge, match=source.name):
        convert(source, "qcow2", tmp_path, workdir,
                max_virtual_size=16 * 1024 * 1024)


def test_unpacked_size_bound(disk_image, tmp_path, workdir):
    source = disk_image("gpt", "swap", "ext4", "qcow2")
    with pytest.raises(errors.ImageTooLarge, match="archives to more"):
        convert(source, "qcow2", tmp_path, workdir,
                max_unpacked_size=2 * 1024 * 1024)
    assert not (tmp_path / "rootfs.tar.zst").exists()


def test_disk_without_a_linux_file_system(tmp_path, workdir):
    raw = tmp_path / "swap-only.raw"
    with open(raw, "wb") as f:
        f.truncate(32 * 1024 * 1024)
    subprocess.run(["sfdisk", "-q", str(raw)], input="label: dos\n"
                   "start=2048, type=82\n", text=True, check=True,
                   capture_output=True)
    part = tmp_path / "swap"
    with open(part, "wb") as f:
        f.truncate(31 * 1024 * 1024)
    subprocess.run(["mkswap", "-q", str(part)], check=True)
    subprocess.run(["dd", f"if={part}", f"of={raw}", "bs=1M", "seek=1",
                    "conv=notrunc", "status=none"], check=True)
    with pytest.raises(errors.InvalidImage, match="swap"):
        convert(raw, "raw", tmp_path, workdir)


def test_corrupt_filesystem_is_a_typed_error(fs_image, tmp_path, workdir):
    image = tmp_path / "bad.ext4"
    shutil.copyfile(fs_image("ext4"), image)
    with open(image, "r+b") as f:  # s_log_block_size: 2**30 KiB blocks
        f.seek(1024 + 24)
        f.write((20).to_bytes(4, "little"))
    with pytest.raises(errors.InvalidImage, match="cannot mount"):
        convert(image, "raw", tmp_path, workdir)


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
from nova_lxd.engine.images import disk

def inspect(root):
    time.sleep(120)  # hold the mount while the test kills us
    return {}

disk.convert_disk(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]),
                  workdir=Path(sys.argv[4]), max_virtual_size=1 << 40,
                  max_unpacked_size=1 << 40, inspect=inspect)
"""


def test_sigkill_leaves_no_mount_and_no_loop_device(disk_image, tmp_path,
                                                    workdir):
    source = disk_image("gpt", "swap", "ext4", "qcow2")
    marker = f"convert-{uuid.uuid4().hex}"
    env = dict(os.environ, PYTHONPATH=str(
        Path(nova_lxd.__file__).parent.parent))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(source), "qcow2",
         str(tmp_path / "out.tar.zst"), str(workdir), marker], env=env)
    try:
        deadline = time.monotonic() + 20
        while not attached_loops(workdir):
            assert proc.poll() is None, "the converter exited early"
            assert time.monotonic() < deadline, "never mounted"
            time.sleep(0.02)
        # Mounted in the helper's namespace, invisible to the host.
        assert host_mounts_under(workdir) == []
        assert len(_processes(marker)) == 2  # converter and mount helper
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while attached_loops(workdir) or _processes(marker):
        assert time.monotonic() < deadline, (
            f"left behind: {attached_loops(workdir)} {_processes(marker)}")
        time.sleep(0.02)
    assert host_mounts_under(workdir) == []
    # What the kill left in the work directory, for the store to remove.
    leftovers = sorted(p.name for p in workdir.iterdir())
    assert leftovers and all(n.startswith(("disk-", ".mnt-"))
                             for n in leftovers)
    assert loop.detach_stale_loops(workdir) == []


def _processes(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_detach_stale_loops(tmp_path):
    backing = tmp_path / "stale.raw"
    with open(backing, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    device = subprocess.run(["losetup", "--find", "--show", str(backing)],
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    try:
        assert attached_loops(tmp_path) == [device]
        assert loop.detach_stale_loops(tmp_path) == [device]
        deadline = time.monotonic() + 5
        while attached_loops(tmp_path):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)
