"""Disk images built from a rootfs tree, for tests and benchmarks:
file-system images (ext4, xfs, btrfs, squashfs), MBR/GPT partitioned
disks, and their qcow2/vmdk/vdi/vhdx conversions. Everything is sparse.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

MiB = 1024 * 1024
# xfsprogs refuses file systems under 300 MB.
_MIN_SIZE = {"xfs": 320 * MiB, "btrfs": 128 * MiB}


def tree_size(root: Path) -> int:
    total = 0
    for path, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(path, name)).st_size
    return total


def make_filesystem(rootfs: Path, dest: Path, fs: str) -> Path:
    """A file-system image of ``rootfs`` (owners and modes kept)."""
    size = max(_MIN_SIZE.get(fs, 32 * MiB),
               int(tree_size(rootfs) * 1.6) + 64 * MiB)
    size -= size % MiB
    dest.unlink(missing_ok=True)
    if fs == "squashfs":
        _run("mksquashfs", str(rootfs), str(dest), "-noappend", "-quiet",
             "-no-progress")
        return dest
    with open(dest, "wb") as f:
        f.truncate(size)
    if fs in ("ext2", "ext3", "ext4"):
        _run(f"mkfs.{fs}", "-q", "-F", "-d", str(rootfs), str(dest))
    elif fs == "btrfs":
        _run("mkfs.btrfs", "-q", "-f", "--rootdir", str(rootfs), str(dest))
    elif fs == "xfs":
        _run("mkfs.xfs", "-q", "-f", str(dest))
        _copy_in_loop_mount(rootfs, dest)
    else:
        raise ValueError(f"unknown file system {fs}")
    return dest


def _copy_in_loop_mount(rootfs: Path, image: Path) -> None:
    mnt = Path(tempfile.mkdtemp(prefix="nova-lxd-mkfs-"))
    try:
        _run("mount", "-o", "loop", str(image), str(mnt))
        try:
            _run("cp", "-a", f"{rootfs}/.", str(mnt))
        finally:
            _run("umount", str(mnt))
    finally:
        mnt.rmdir()


def make_partitioned_disk(fs_image: Path, dest: Path, table: str = "gpt",
                          *, filler: str | None = "swap") -> Path:
    """A disk whose last partition holds ``fs_image``; with ``filler`` a
    small first partition (swap or vfat) that is not the root."""
    fs_size = fs_image.stat().st_size
    fs_size += (-fs_size) % MiB
    first = 1 * MiB
    filler_size = 8 * MiB if filler else 0
    start = first + filler_size
    total = start + fs_size + (1 * MiB if table == "gpt" else 0)
    dest.unlink(missing_ok=True)
    with open(dest, "wb") as f:
        f.truncate(total)
    linux = "L" if table == "dos" else (
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4")
    swap = {("dos", "swap"): "S", ("dos", "vfat"): "c",
            ("gpt", "swap"): "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
            ("gpt", "vfat"): "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
            }.get((table, filler or "swap"))
    lines = [f"label: {table}"]
    if filler:
        lines.append(f"start={first // 512}, size={filler_size // 512}, "
                     f"type={swap}")
    lines.append(f"start={start // 512}, size={fs_size // 512}, "
                 f"type={linux}")
    subprocess.run(["sfdisk", "-q", str(dest)], input="\n".join(lines),
                   text=True, check=True, capture_output=True)
    if filler:
        part = dest.with_name(dest.name + ".part1")
        with open(part, "wb") as f:
            f.truncate(filler_size)
        _run(*(["mkswap", "-q"] if filler == "swap" else ["mkfs.vfat"]),
             str(part))
        _run("dd", f"if={part}", f"of={dest}", "bs=1M",
             f"seek={first // MiB}", "conv=notrunc", "status=none")
        part.unlink()
    _run("dd", f"if={fs_image}", f"of={dest}", "bs=1M",
         f"seek={start // MiB}", "conv=notrunc,sparse", "status=none")
    return dest


def convert(raw: Path, dest: Path, fmt: str) -> Path:
    """``qemu-img convert`` a raw image to ``fmt``."""
    if fmt == "raw":
        shutil.copyfile(raw, dest)
        return dest
    _run("qemu-img", "convert", "-f", "raw", "-O", fmt, str(raw), str(dest))
    return dest


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)
