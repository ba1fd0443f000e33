#!/usr/bin/env python3
"""Conversion benchmark: a Debian minbase qcow2 to a rootfs tar.zst.

The floor is the pipeline an operator would run by hand::

    qemu-img convert -f qcow2 -O raw disk.qcow2 disk.raw
    losetup --read-only --offset ... --sizelimit ... ; mount -o ro
    tar -C mnt --numeric-owner -cf - . | zstd -T0 -q -o rootfs.tar.zst
    umount; losetup -d

The engine's side is ``Engine.import_image`` (what the Nova driver calls:
detection, qemu-img checks, private-namespace mount, archive, import into
the store with its safety scan) and ``nova-lxd-image convert``'s library
call, and ``disk.convert_disk`` alone. Runs are interleaved; medians and
throughput ratios (floor time / our time) are printed.

    sudo .venv/bin/python benchmarks/convert.py [--runs 5]
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

from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.images import disk, partitions
from nova_lxd.engine.images.pipeline import ImageImporter
from nova_lxd.testing import disks
from nova_lxd.testing.debootstrap import minbase_rootfs


def build_qcow2(work: Path) -> tuple[Path, partitions.Partition]:
    """GPT disk, swap in partition 1, ext4 root in partition 2."""
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
         str(raw)],
        check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run(["mount", "-o", "ro", loop, str(mnt)], check=True)
        try:
            subprocess.run(f"tar -C {mnt} --numeric-owner -cf - . | "
                           f"zstd -T0 -q -f -o {out}", shell=True,
                           check=True)
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
    elapsed = time.perf_counter() - started
    raw.unlink()
    out.unlink()
    return elapsed


def engine_import(engine: Engine, qcow2: Path, run: int) -> float:
    """As the Nova driver imports: with the Glance id and checksum."""
    origin = {"glance_id": f"bench-{run}", "checksum": "from-glance"}
    started = time.perf_counter()
    image = engine.import_image(qcow2, disk_format="qcow2", origin=origin)
    elapsed = time.perf_counter() - started
    engine.delete_image(image.fingerprint)
    return elapsed


def convert_disk(qcow2: Path, work: Path) -> float:
    """The disk step alone (no store, no facts)."""
    out, scratch = work / "component.tar.zst", work / "scratch"
    scratch.mkdir(exist_ok=True)
    started = time.perf_counter()
    disk.convert_disk(qcow2, "qcow2", out, workdir=scratch,
                      max_virtual_size=100 << 30,
                      max_unpacked_size=20 << 30)
    elapsed = time.perf_counter() - started
    out.unlink()
    return elapsed


def offline_convert(qcow2: Path, work: Path) -> float:
    out = work / "offline.tar.zst"
    started = time.perf_counter()
    ImageImporter(None, EngineConfig()).convert_file(qcow2, out)
    elapsed = time.perf_counter() - started
    out.unlink()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: images are mounted", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="nova-lxd-bench-", dir="/var/tmp"))
    try:
        qcow2, root = build_qcow2(work)
        engine = Engine(EngineConfig(root=work / "engine"))
        times: dict[str, list[float]] = {"floor": [], "convert_disk": [],
                                         "import": [], "convert": []}
        floor(qcow2, root, work)  # warm the page cache
        for run in range(args.runs):
            times["floor"].append(floor(qcow2, root, work))
            times["convert_disk"].append(convert_disk(qcow2, work))
            times["import"].append(engine_import(engine, qcow2, run))
            times["convert"].append(offline_convert(qcow2, work))
        qsize = qcow2.stat().st_size
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"runs": args.runs, "qcow2_mb": round(qsize / 1e6, 1),
              **{f"{k}_median_s": round(v, 3) for k, v in med.items()},
              "convert_disk_throughput_vs_floor": round(
                  med["floor"] / med["convert_disk"], 2),
              "import_throughput_vs_floor": round(med["floor"]
                                                  / med["import"], 2),
              "convert_throughput_vs_floor": round(med["floor"]
                                                   / med["convert"], 2)}
    print(f"qcow2 -> rootfs tar.zst, minbase {result['qcow2_mb']} MB "
          f"qcow2, {args.runs} runs each (medians):")
    print(f"  floor (qemu-img + loop mount + tar | zstd -T0): "
          f"{med['floor']:.2f} s")
    print(f"  disk.convert_disk (the disk step alone):        "
          f"{med['convert_disk']:.2f} s  throughput x"
          f"{result['convert_disk_throughput_vs_floor']}")
    print(f"  Engine.import_image:                            "
          f"{med['import']:.2f} s  throughput x"
          f"{result['import_throughput_vs_floor']}")
    print(f"  nova-lxd-image convert (library):               "
          f"{med['convert']:.2f} s  throughput x"
          f"{result['convert_throughput_vs_floor']}  (goal >= 0.8)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
