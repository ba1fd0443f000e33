#!/usr/bin/env python3
"""Snapshot benchmark: a running container with a 1 GiB rootfs, on the
btrfs and the dir pool, in one run.

For each pool a busybox container is launched and 1 GiB of random data
(``--files`` files) is written inside it. Then, interleaved across the
pools so that noise hits both alike, each run takes:

* **engine**: ``Engine.snapshot_create`` of the running container: the
  call's wall time (lock, metadata, syncfs, freeze, the pool's snapshot,
  thaw) and ``frozen_seconds`` (freeze call to thaw returned);
* **floor**: the same by hand with the tools: ``lxc-freeze``, ``btrfs
  subvolume snapshot -r`` (btrfs) or ``cp -a --reflink=auto`` (dir),
  ``lxc-unfreeze``; total and frozen as above.

Snapshots are deleted after each run (not timed). Medians are printed
and written as JSON.

    sudo .venv/bin/python benchmarks/snapshot.py [--runs 7] [--json out]
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
from nova_lxd.engine.config import EngineConfig, GiB
from nova_lxd.testing.busybox import build_busybox_tarball

NAME = "bench"


def make_engine(root: Path, driver: str, tarball: Path) -> Engine:
    root.mkdir(mode=0o711)
    engine = Engine(EngineConfig(root=root, storage_driver=driver,
                                 storage_size=8 * GiB))
    engine.import_image(tarball, aliases=("busybox",))
    return engine


def fill(engine: Engine, size: int, files: int) -> None:
    """``size`` bytes of random data in ``files`` files, written inside."""
    per = size // files // (1024 * 1024)
    script = (f"mkdir -p /payload; i=0; while [ $i -lt {files} ]; do "
              f"dd if=/dev/urandom of=/payload/f$i bs=1M count={per} "
              f"2>/dev/null || exit 1; i=$((i+1)); done; sync")
    result = engine.execute(NAME, ["sh", "-c", script], timeout=1800)
    if result.exit_code != 0:
        raise SystemExit(f"filling the rootfs failed: {result.stderr!r}")


def engine_snapshot(engine: Engine, snap: str) -> tuple[float, float]:
    started = time.perf_counter()
    record = engine.snapshot_create(NAME, snap)
    total = time.perf_counter() - started
    engine.snapshot_delete(NAME, snap)
    return total, record.frozen_seconds


def floor_snapshot(engine: Engine, snap: str) -> tuple[float, float]:
    lxc = ["-n", NAME, "-P", str(engine.config.containers_dir)]
    rootfs = engine.containers.rootfs(NAME)
    dest = rootfs.parent / f"floor-{snap}" if engine.pool.driver == "dir" \
        else engine.pool.root / "snapshots" / f"floor-{snap}"
    if engine.pool.driver == "btrfs":
        copy = ["btrfs", "subvolume", "snapshot", "-r", str(rootfs),
                str(dest)]
    else:
        copy = ["cp", "-a", "--reflink=auto", str(rootfs), str(dest)]
    started = time.perf_counter()
    subprocess.run(["lxc-freeze", *lxc], check=True)
    subprocess.run(copy, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["lxc-unfreeze", *lxc], check=True)
    total = time.perf_counter() - started
    if engine.pool.driver == "btrfs":
        subprocess.run(["btrfs", "subvolume", "delete", str(dest)],
                       check=True, stdout=subprocess.DEVNULL)
    else:
        shutil.rmtree(dest)
    # The floor cannot see the freeze apart from the copy: the whole
    # sequence is its frozen time.
    return total, total


def ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", type=int, default=1 * GiB)
    parser.add_argument("--files", type=int, default=256)
    parser.add_argument("--drivers", default="btrfs,dir")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: containers are started", file=sys.stderr)
        return 2
    drivers = args.drivers.split(",")
    base_dir = Path(tempfile.mkdtemp(prefix="nova-lxd-bench-",
                                     dir="/var/tmp"))
    os.chmod(base_dir, 0o711)
    engines: dict[str, Engine] = {}
    samples = {d: {"engine": [], "frozen": [], "floor": []}
               for d in drivers}
    try:
        tarball = build_busybox_tarball(base_dir / "busybox.tar.gz")
        for driver in drivers:
            engine = engines[driver] = make_engine(base_dir / driver,
                                                   driver, tarball)
            engine.launch(NAME, "busybox")
            started = time.perf_counter()
            fill(engine, args.size, args.files)
            print(f"{driver}: wrote {args.size >> 20} MiB in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            engine_snapshot(engine, "warm")  # page cache, host probes
        for i in range(args.runs):
            for driver in drivers:
                engine = engines[driver]
                total, frozen = engine_snapshot(engine, f"s{i}")
                samples[driver]["engine"].append(total)
                samples[driver]["frozen"].append(frozen)
                floor, _ = floor_snapshot(engine, f"s{i}")
                samples[driver]["floor"].append(floor)
    finally:
        for engine in engines.values():
            try:
                engine.delete(NAME, force=True)
            except Exception as exc:  # noqa: BLE001 - keep cleaning
                print(f"cleanup: {exc}", file=sys.stderr)
        subprocess.run(["umount", "-l", str(base_dir / "btrfs" / "storage"
                                            / "default")],
                       capture_output=True)
        shutil.rmtree(base_dir, ignore_errors=True)

    result = {"runs": args.runs, "rootfs_bytes": args.size,
              "files": args.files}
    print(f"snapshot of a running busybox container with "
          f"{args.size >> 20} MiB of data, {args.runs} runs (medians):")
    for driver in drivers:
        s = samples[driver]
        row = {"engine_total_ms": ms(s["engine"]),
               "engine_frozen_ms": ms(s["frozen"]),
               "engine_total_max_ms": round(max(s["engine"]) * 1000, 1),
               "engine_frozen_max_ms": round(max(s["frozen"]) * 1000, 1),
               "floor_total_ms": ms(s["floor"])}
        row["ratio"] = round(row["engine_total_ms"] / row["floor_total_ms"],
                             2)
        result[driver] = row
        print(f"  {driver:5}  engine total {row['engine_total_ms']} ms, "
              f"frozen {row['engine_frozen_ms']} ms; floor (lxc-freeze + "
              f"copy + lxc-unfreeze) {row['floor_total_ms']} ms; ratio "
              f"{row['ratio']}")
    if "btrfs" in result:
        print("  goal on btrfs: total <= 200 ms, frozen <= 50 ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
