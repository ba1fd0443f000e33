#!/usr/bin/env python3
"""``disk.convert_disk`` against the hand pipeline, on a minbase qcow2.

The image: Debian minbase (cached by nova_lxd.testing.debootstrap) as ext4
in partition 2 of a GPT disk (swap in partition 1), converted to qcow2.
The floor is what an operator would type::

    qemu-img convert -f qcow2 -O raw disk.qcow2 disk.raw
    losetup --find --show --read-only --offset O --sizelimit S disk.raw
    mount -o ro /dev/loopN mnt
    tar -C mnt --numeric-owner -cf - . | zstd -T0 -q -o rootfs.tar.zst
    umount mnt; losetup -d /dev/loopN; rm disk.raw

Runs are interleaved after one warm-up of each; medians are printed.

    sudo .venv/bin/python benchmarks/disk.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nova_lxd.engine.images import disk, partitions
from nova_lxd.testing import disks
from nova_lxd.testing.debootstrap import minbase_rootfs


def build(work: Path) -> tuple[Path, partitions.Partition]:
    fs = disks.make_filesystem(minbase_rootfs(), work / "root.ext4", "ext4")
    raw = disks.make_partitioned_disk(fs, work / "disk.raw", "gpt")
    fs.unlink()
    qcow2 = disks.convert(raw, work / "minbase.qcow2", "qcow2")
    root = partitions.read_table(raw)[-1]
    raw.unlink()
    return qcow2, root


def floor(qcow2: Path, root: partitions.Partition, work: Path) -> float:
    raw, out, mnt = work / "floor.raw", work / "floor.tar.zst", work / "mnt"
    mnt.mkdir(exist_ok=True)
    started = time.perf_counter()
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw",
                    str(qcow2), str(raw)], check=True)
    loop = subprocess.run(
        ["losetup", "--find", "--show", "--read-only", "--offset",
         str(root.start_bytes), "--sizelimit", str(root.size_bytes),
         str(raw)], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["mount", "-o", "ro", loop, str(mnt)], check=True)
    subprocess.run(f"tar -C {mnt} --numeric-owner -cf - . | "
                   f"zstd -T0 -q -f -o {out}", shell=True, check=True)
    subprocess.run(["umount", str(mnt)], check=True)
    subprocess.run(["losetup", "-d", loop], check=True)
    raw.unlink()
    elapsed = time.perf_counter() - started
    out.unlink()
    return elapsed


def engine(qcow2: Path, work: Path) -> float:
    out, scratch = work / "engine.tar.zst", work / "scratch"
    scratch.mkdir(exist_ok=True)
    started = time.perf_counter()
    disk.convert_disk(qcow2, "qcow2", out, workdir=scratch,
                      max_virtual_size=100 << 30,
                      max_unpacked_size=20 << 30)
    elapsed = time.perf_counter() - started
    out.unlink()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: images are mounted", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="nova-lxd-disk-", dir="/var/tmp"))
    try:
        qcow2, root = build(work)
        floor(qcow2, root, work)
        engine(qcow2, work)
        times: dict[str, list[float]] = {"floor": [], "convert_disk": []}
        for _ in range(args.runs):
            times["floor"].append(floor(qcow2, root, work))
            times["convert_disk"].append(engine(qcow2, work))
        qcow2_mb = qcow2.stat().st_size / 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "runs": args.runs, "qcow2_mb": round(qcow2_mb, 1),
        **{f"{k}_median_s": round(v, 3) for k, v in med.items()},
        "throughput_ratio": round(med["floor"] / med["convert_disk"], 2),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
