"""Boot-to-ACTIVE latency on the one-host cloud (tools/cloud.sh up).

Run with the cloud's own Python (it has openstacksdk and nova-lxd), as
root, with the admin credentials::

    . /var/lib/nova-lxd-cloud/openrc
    /var/lib/nova-lxd-cloud/venv/bin/python benchmarks/cloud_boot.py

Measures, from the API request to the status ACTIVE seen by polling the
API every 50 ms (no client start-up in the figures): N sequential boots
(each server deleted before the next), N boots requested at once (N
parallel requests), and, in the same run, the engine's bare launch of
the same busybox image on a scratch engine root, for the ratio. The
image is cached by the compute host before the first measured boot.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import openstack

from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.testing.busybox import build_busybox_tarball

POLL = 0.05


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[k]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p95": pct(values, 95),
            "max": max(values), "n": len(values)}


class Bench:
    def __init__(self, image: str, flavor: str) -> None:
        self.conn = openstack.connect()
        self.image = self.conn.image.find_image(image, ignore_missing=False)
        self.flavor = self.conn.compute.find_flavor(flavor,
                                                    ignore_missing=False)
        self.prefix = f"bench-{uuid.uuid4().hex[:6]}"

    def create(self, name: str):
        return self.conn.compute.create_server(
            name=name, image_id=self.image.id, flavor_id=self.flavor.id,
            networks="none")

    def wait_active(self, ids: set[str], t0: dict[str, float],
                    timeout: float = 300) -> dict[str, float]:
        done: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(done) < len(ids):
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"not ACTIVE after {timeout} s: "
                                   f"{sorted(ids - done.keys())}")
            for server in self.conn.compute.servers(
                    details=True, name=f"^{self.prefix}-"):
                if server.id in ids and server.id not in done:
                    if server.status == "ERROR":
                        raise RuntimeError(f"{server.name}: {server.fault}")
                    if server.status == "ACTIVE":
                        done[server.id] = now - t0[server.id]
            time.sleep(POLL)
        return done

    def delete_all(self) -> None:
        servers = list(self.conn.compute.servers(name=f"^{self.prefix}-"))
        for server in servers:
            self.conn.compute.delete_server(server)
        for server in servers:
            self.conn.compute.wait_for_delete(server, wait=300)

    def sequential(self, n: int) -> list[float]:
        times = []
        for i in range(n):
            t0 = time.monotonic()
            server = self.create(f"{self.prefix}-s{i}")
            times += self.wait_active({server.id},
                                      {server.id: t0}).values()
            self.delete_all()
        return times

    def parallel(self, n: int) -> tuple[list[float], float]:
        t0: dict[str, float] = {}
        start = time.monotonic()

        def one(i: int) -> None:
            t = time.monotonic()
            server = self.create(f"{self.prefix}-p{i}")
            t0[server.id] = t

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            list(pool.map(one, range(n)))
        done = self.wait_active(set(t0), t0)
        total = max(t0[k] + v for k, v in done.items()) - start
        self.delete_all()
        return list(done.values()), total


def bare_launches(n: int) -> list[float]:
    """The engine alone: launch (create + start) of the busybox image."""
    root = Path(tempfile.mkdtemp(prefix="bench-", dir="/var/tmp"))
    root.chmod(0o711)
    try:
        engine = Engine(EngineConfig(root=root))
        tarball = build_busybox_tarball(root / "busybox.tar.gz")
        engine.import_image(tarball, aliases=("busybox",))
        times = []
        for i in range(n):
            t0 = time.monotonic()
            engine.launch(f"bench{i}", "busybox")
            times.append(time.monotonic() - t0)
            engine.delete(f"bench{i}", force=True)
        return times
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--image", default="busybox")
    parser.add_argument("--flavor", default="c1.tiny")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    bench = Bench(args.image, args.flavor)
    try:
        bench.sequential(1)  # the compute host caches the image
        seq = bench.sequential(args.count)
        par, total = bench.parallel(args.count)
    finally:
        bench.delete_all()
    bare = bare_launches(args.count)
    result = {"sequential": summary(seq), "parallel": summary(par),
              "parallel_all_active_s": total, "bare_launch": summary(bare),
              "ratio_p50_sequential_to_bare":
                  statistics.median(seq) / statistics.median(bare)}
    for key in ("sequential", "parallel", "bare_launch"):
        s = result[key]
        print(f"{key:12} p50 {s['p50']:6.2f} s  p95 {s['p95']:6.2f} s  "
              f"max {s['max']:6.2f} s  (n={s['n']})")
    print(f"{args.count} parallel: all ACTIVE {total:.2f} s after the first "
          f"request; sequential p50 / bare launch p50 = "
          f"{result['ratio_p50_sequential_to_bare']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
