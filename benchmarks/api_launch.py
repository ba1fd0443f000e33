#!/usr/bin/env python3
"""API launch benchmark: launching through nlxd's unix socket against the
engine's bare ``Engine.launch()``, same image, same engine root, one run.

A real ``nlxd`` process serves a fresh root; this process opens an
Engine on the same root (the engine's cross-process locks make that
safe). Each round launches one container each way, interleaved so that
noise hits both alike: the API side is ``POST /1.0/instances`` with
``start: true`` plus ``/wait`` on its operation (what ``lxc launch``
costs a client), the engine side is ``Engine.launch()``. Medians, 90th
percentiles and the ratio api/engine are printed and written as JSON.

    sudo .venv/bin/python benchmarks/api_launch.py [--runs 20] [--json out]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.testing.busybox import build_busybox_tarball

BASE = Path("/var/tmp/nova-lxd-bench")


def unix_session(socket_path: Path) -> tuple[str, requests.Session]:
    import urllib.parse

    import pylxd.client
    base = "http+unix://" + urllib.parse.quote(str(socket_path), safe="")
    return base, pylxd.client.get_session_for_url(base)


def start_daemon(root: Path) -> subprocess.Popen:
    config = root / "nlxd.conf"
    config.write_text(f"[lxc]\nroot = {root}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nova_lxd.cmd.daemon", "--config-file",
         str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket_path = root / "daemon" / "unix.socket"
    for _ in range(600):
        if socket_path.exists():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("nlxd did not start")


def api_launch(base: str, session: requests.Session, name: str,
               image: str) -> float:
    started = time.perf_counter()
    r = session.post(f"{base}/1.0/instances", json={
        "name": name, "source": {"type": "image", "fingerprint": image},
        "start": True})
    r.raise_for_status()
    op = session.get(f"{base}{r.json()['operation']}/wait",
                     params={"timeout": 120}).json()["metadata"]
    elapsed = time.perf_counter() - started
    if op["status"] != "Success":
        raise SystemExit(f"API launch failed: {op['err']}")
    return elapsed


def engine_launch(engine: Engine, name: str, image: str) -> float:
    started = time.perf_counter()
    engine.launch(name, image)
    return time.perf_counter() - started


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    BASE.mkdir(parents=True, exist_ok=True)
    BASE.chmod(0o711)
    root = Path(tempfile.mkdtemp(prefix="api-", dir=BASE))
    root.chmod(0o711)
    proc = start_daemon(root)
    engine = Engine(EngineConfig(root=root, stop_timeout=5))
    results: dict[str, list[float]] = {"api": [], "engine": []}
    try:
        base, session = unix_session(root / "daemon" / "unix.socket")
        tarball = build_busybox_tarball(root / "busybox.tar.gz")
        r = session.post(f"{base}/1.0/images", data=tarball.read_bytes())
        image = session.get(f"{base}{r.json()['operation']}/wait").json()[
            "metadata"]["metadata"]["fingerprint"]
        for i in range(args.runs + 1):  # the first round warms caches
            api = api_launch(base, session, f"api{i}", image)
            bare = engine_launch(engine, f"eng{i}", image)
            for name in (f"api{i}", f"eng{i}"):
                engine.delete(name, force=True)
            if i:
                results["api"].append(api)
                results["engine"].append(bare)
    finally:
        for record in engine.list():
            engine.delete(record.name, force=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(root, ignore_errors=True)
    summary = {side: {"median": statistics.median(v), "p90": p90(v)}
               for side, v in results.items()}
    summary["ratio"] = summary["api"]["median"] / \
        summary["engine"]["median"]
    for side in ("api", "engine"):
        print(f"{side:7s} median {summary[side]['median'] * 1000:7.1f} ms"
              f"  p90 {summary[side]['p90'] * 1000:7.1f} ms")
    print(f"ratio api/engine (medians): {summary['ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, **summary,
                                         "samples": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
