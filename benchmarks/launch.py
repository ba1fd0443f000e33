#!/usr/bin/env python3
"""Launch benchmark: the engine against the raw liblxc floor, one run.

The floor is what a person does by hand with liblxc's tools: untar the
rootfs, write a minimal config for an unprivileged, idmapped container and
``lxc-start`` it until RUNNING. The engine launches the same image through
its API (image already imported, as the floor's tarball is already on
disk). Runs are interleaved so that noise hits both sides alike; medians
and the ratio engine/floor are printed and written as JSON.

    sudo .venv/bin/python benchmarks/launch.py [--runs 20] [--json out]
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
from nova_lxd.engine.idmap import read_subordinate_ranges
from nova_lxd.testing.busybox import build_busybox_tarball

FLOOR_CONFIG = """\
lxc.uts.name = {name}
lxc.rootfs.path = dir:{rootfs}
lxc.rootfs.options = idmap=container
lxc.idmap = u 0 {base} 65536
lxc.idmap = g 0 {base} 65536
lxc.net.0.type = empty
lxc.autodev = 1
lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed
lxc.tty.max = 0
"""


def floor_launch(lxcpath: Path, name: str, tarball: Path,
                 base: int) -> float:
    started = time.perf_counter()
    directory = lxcpath / name
    rootfs = directory / "rootfs"
    rootfs.mkdir(parents=True)
    os.chmod(directory, 0o711)
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(rootfs),
                    "--numeric-owner", "--exclude=./dev/*"], check=True)
    (directory / "config").write_text(
        FLOOR_CONFIG.format(name=name, rootfs=rootfs, base=base))
    subprocess.run(["lxc-start", "-n", name, "-P", str(lxcpath), "-d"],
                   check=True)
    elapsed = time.perf_counter() - started
    subprocess.run(["lxc-stop", "-n", name, "-P", str(lxcpath), "-k"],
                   check=True)
    shutil.rmtree(directory)
    return elapsed


def engine_launch(engine: Engine, name: str) -> float:
    started = time.perf_counter()
    engine.launch(name, "busybox")
    elapsed = time.perf_counter() - started
    engine.delete(name, force=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: containers are started", file=sys.stderr)
        return 2

    base_dir = Path(tempfile.mkdtemp(prefix="nova-lxd-bench-",
                                     dir="/var/tmp"))
    os.chmod(base_dir, 0o711)
    try:
        tarball = build_busybox_tarball(base_dir / "busybox.tar.gz")
        floor_path = base_dir / "floor"
        floor_path.mkdir(mode=0o711)
        engine = Engine(EngineConfig(root=base_dir / "engine"))
        engine.import_image(tarball, aliases=("busybox",))
        base = read_subordinate_ranges(Path("/etc/subuid"), "root")[0].start
        # Warm caches on both sides once (page cache, host probes).
        floor_launch(floor_path, "warm", tarball, base)
        engine_launch(engine, "warm")
        floor, ours = [], []
        for i in range(args.runs):
            floor.append(floor_launch(floor_path, f"f{i}", tarball, base))
            ours.append(engine_launch(engine, f"e{i}"))
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)

    result = {
        "runs": args.runs,
        "floor_median_ms": round(statistics.median(floor) * 1000, 1),
        "engine_median_ms": round(statistics.median(ours) * 1000, 1),
        "floor_min_ms": round(min(floor) * 1000, 1),
        "engine_min_ms": round(min(ours) * 1000, 1),
    }
    result["ratio"] = round(result["engine_median_ms"]
                            / result["floor_median_ms"], 2)
    print(f"launch, busybox image, {args.runs} runs each (medians):")
    print(f"  raw liblxc floor (untar + config + lxc-start): "
          f"{result['floor_median_ms']} ms")
    print(f"  nova-lxd engine launch:                        "
          f"{result['engine_median_ms']} ms")
    print(f"  ratio engine/floor: {result['ratio']} (goal <= 1.3)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
