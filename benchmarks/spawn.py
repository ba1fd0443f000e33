#!/usr/bin/env python3
"""Spawn benchmark: a boot through Nova against the engine's bare launch.

Nova's API, conductor, scheduler, placement and one compute service that
runs ``LXCDriver`` are stood up in this process exactly as the functional
tests do (``tests/functional/virt``: nova's own fixtures, a fresh engine
root under /var/tmp). The busybox rootfs tarball is uploaded to the
Glance fixture (raw/bare) and one warm-up server is booted, so that the
image is cached in the engine. Then, one at a time, ``--runs`` boots are
measured, interleaved with as many bare ``Engine.launch()`` calls of the
same cached image with the same limits on the same engine root:

* request to ACTIVE: from the API POST until a GET of the server says
  ACTIVE, split into the POST itself, the time until the driver's
  ``spawn`` is entered, ``spawn``, and the time from its return until
  ACTIVE is seen (including the GET that saw it);
* ``spawn``: the driver's own method, timed by a wrapper;
* engine launch: ``Engine.launch()`` alone.

How the script waits for ACTIVE matters, because everything runs in one
Python process: a GET of a server costs nova's API 50-150 ms of CPU, so
polling every 20 ms keeps a thread busy that competes for the GIL with
the compute thread, and the many short system calls of the rootfs
extraction then each wait for the GIL (spawn measured 1.6-2x slower).
By default (``--wait notification``) the script sleeps until nova's
``instance.create.end`` notification, which the compute manager sends
right after it saved the instance ACTIVE, and then GETs the server until
it says ACTIVE (normally once). ``--wait poll`` GETs every ``--poll-ms``
from the POST on instead.

Deletes (servers and bare containers) are not timed. Medians, p90 and
the ratio spawn/engine launch (medians) are printed, and written as JSON.

    sudo .venv/bin/python benchmarks/spawn.py [--runs 20] [--json out]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import logging
import math
import os
import statistics
import sys
import time
import types
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Before anything imports nova: native threads, as the test suite (and
# nova-compute 34 by default) runs them.
import tests.conftest  # noqa: E402, F401, I001

import nova.conf  # noqa: E402
from nova.tests.functional.api import client as api_client  # noqa: E402

from nova_lxd import conf as lxd_conf  # noqa: E402
from nova_lxd.engine.api import Engine  # noqa: E402
from nova_lxd.virt.driver import container_name  # noqa: E402
from tests.functional.virt import base  # noqa: E402

CONF = nova.conf.CONF
STEPS = ("request_to_active", "post", "post_to_spawn", "spawn",
         "spawn_to_active", "get", "engine_launch")


class SpawnBenchmark(base.LXCIntegratedTestBase):
    """One run of the benchmark as a test case of the functional tier."""

    settings: argparse.Namespace
    result: dict | None = None

    def bench(self) -> None:
        args = self.settings
        self.poll = args.poll_ms / 1000.0
        self.spawns: list[tuple[float, float]] = []
        self.profile = cProfile.Profile() if args.profile else None
        self._wrap_spawn()
        image_id = self.upload_busybox()  # raw/bare, as the tests do

        warm = self._boot(image_id)
        record = self.observer_engine().get(warm["name"])
        self.image, self.limits = record.image, dict(record.limits)
        self._delete(warm)
        # Our own engine on the driver's root and settings (a second
        # process would see the same); warm its host probes once.
        self.bare = Engine(lxd_conf.engine_config(CONF), recover=False)
        self._engine_launch("bench-warm")

        times: dict[str, list[float]] = {step: [] for step in STEPS}
        for i in range(args.runs):
            # Alternate which side goes first: a side effect of the
            # previous measurement (page cache, a deferred free) then
            # hits both sides alike.
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for side in order:
                if side == 0:
                    times["engine_launch"].append(
                        self._engine_launch(f"bench-e{i}"))
                else:
                    boot = self._boot(image_id, profile=True)
                    for step in STEPS[:-1]:
                        times[step].append(boot[step])
                    self._delete(boot)
        if self.profile is not None:
            self.profile.dump_stats(args.profile)
        type(self).result = summarise(times, args)
        # Teardown (services, thread pools, the engine root) logs at INFO
        # after nova's log capture is gone: keep that off the terminal.
        self.addCleanup(logging.disable, logging.INFO)

    # -- the two sides -----------------------------------------------------

    def _wrap_spawn(self) -> None:
        driver = self.compute.driver
        spawn = driver.spawn

        @functools.wraps(spawn)
        def timed_spawn(*a, **kw):
            profile = self.profile if self._profiling else None
            started = time.perf_counter()
            try:
                if profile is not None:
                    return profile.runcall(spawn, *a, **kw)
                return spawn(*a, **kw)
            finally:
                self.spawns.append((started, time.perf_counter()))

        self._profiling = False
        driver.spawn = timed_spawn
        self.addCleanup(vars(driver).pop, "spawn", None)

    def _boot(self, image_id: str, profile: bool = False) -> dict:
        body = self._build_server(image_uuid=image_id, networks="none")
        self._profiling = profile
        self.spawns.clear()
        self.notifier.reset()
        started = time.perf_counter()
        server = self.api.post_server({"server": body})
        posted = time.perf_counter()
        if self.settings.wait == "notification":
            # Sleep until the compute manager has saved the instance
            # ACTIVE and said so; the GETs below then normally run once.
            self.notifier.wait_for_versioned_notifications(
                "instance.create.end", timeout=120)
        while True:
            asked = time.perf_counter()
            server = self.api.get_server(server["id"])
            if server["status"] == "ACTIVE":
                break
            if server["status"] == "ERROR":
                self.fail(f"boot failed: {server.get('fault')}")
            if time.perf_counter() - started > 120:
                self.fail(f"no ACTIVE after 120 s: {server['status']}")
            time.sleep(self.poll)
        active = time.perf_counter()
        self._profiling = False
        (spawn_started, spawned), = self.spawns
        return {
            "server": server,
            "name": container_name(types.SimpleNamespace(
                name=server["OS-EXT-SRV-ATTR:instance_name"])),
            "request_to_active": active - started,
            "post": posted - started,
            "post_to_spawn": spawn_started - posted,
            "spawn": spawned - spawn_started,
            "spawn_to_active": active - spawned,
            "get": active - asked,
        }

    def _delete(self, boot: dict) -> None:
        """Delete and wait until the server and its container are gone,
        so that nothing of it runs during the next measurement."""
        server = boot.get("server", boot)
        self.api.delete_server(server["id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.api.get_server(server["id"])
            except api_client.OpenStackApiNotFoundException:
                if server["id"] not in \
                        self.compute.driver.list_instance_uuids():
                    return
            time.sleep(self.poll)
        self.fail(f"server {server['id']} not deleted after 60 s")

    def _engine_launch(self, name: str) -> float:
        started = time.perf_counter()
        self.bare.launch(name, self.image, limits=self.limits)
        elapsed = time.perf_counter() - started
        self.bare.delete(name, force=True)
        return elapsed


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p90 of 20 values is the 18th)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summarise(times: dict[str, list[float]],
              args: argparse.Namespace) -> dict:
    result: dict = {"runs": args.runs, "wait": args.wait,
                    "poll_ms": args.poll_ms}
    for step, values in times.items():
        result[step] = {
            "median_ms": round(statistics.median(values) * 1000, 1),
            "p90_ms": round(percentile(values, 0.9) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1),
        }
    result["ratio_spawn_engine"] = round(
        result["spawn"]["median_ms"]
        / result["engine_launch"]["median_ms"], 2)
    result["ratio_active_engine"] = round(
        result["request_to_active"]["median_ms"]
        / result["engine_launch"]["median_ms"], 2)
    return result


def report(result: dict) -> None:
    labels = {
        "request_to_active": "request to ACTIVE",
        "post": "  API POST (API, conductor, scheduler)",
        "post_to_spawn": "  POST return to spawn (compute)",
        "spawn": "  driver spawn",
        "spawn_to_active": "  spawn return to ACTIVE seen",
        "get": "    of which the GET that saw ACTIVE",
        "engine_launch": "bare Engine.launch()",
    }
    print(f"spawn, busybox image (cached), {result['runs']} boots and "
          f"{result['runs']} bare launches, interleaved; "
          f"wait for ACTIVE: {result['wait']}"
          + (f" every {result['poll_ms']} ms"
             if result["wait"] == "poll" else ""))
    print(f"  {'':40} {'median':>8} {'p90':>8} {'min':>8}  (ms)")
    for step in STEPS:
        row = result[step]
        print(f"  {labels[step]:40} {row['median_ms']:8.1f} "
              f"{row['p90_ms']:8.1f} {row['min_ms']:8.1f}")
    print(f"  ratio spawn/engine launch (medians): "
          f"{result['ratio_spawn_engine']} (goal <= 1.2)")
    print(f"  ratio request-to-ACTIVE/engine launch: "
          f"{result['ratio_active_engine']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--poll-ms", type=float, default=20.0,
                        help="interval of the GETs that wait for ACTIVE")
    parser.add_argument("--profile", type=Path,
                        help="write cProfile stats of the measured "
                             "spawns here (inflates their times)")
    parser.add_argument("--wait", choices=("poll", "notification"),
                        default="notification",
                        help="poll: GET the server every --poll-ms until "
                             "ACTIVE; notification: block until nova's "
                             "instance.create.end, then GET (no polling "
                             "load on the process while it spawns)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: containers are started", file=sys.stderr)
        return 2
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    SpawnBenchmark.settings = args
    case = SpawnBenchmark("bench")
    outcome = unittest.TestResult()
    try:
        case.run(outcome)
    finally:
        logging.disable(logging.NOTSET)
    for _test, trace in outcome.errors + outcome.failures:
        print(trace, file=sys.stderr)
    if outcome.skipped:
        print(outcome.skipped[0][1], file=sys.stderr)
    if SpawnBenchmark.result is None:
        return 1
    report(SpawnBenchmark.result)
    if args.json:
        args.json.write_text(json.dumps(SpawnBenchmark.result, indent=2)
                             + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
