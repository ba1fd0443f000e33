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

With ``--incus`` each round also launches the same busybox rootfs with
Incus, which must already be running and initialised (its default
profile decides storage and devices; give it no NIC, nlxd's launch has
none either). The rootfs tarball is wrapped into a unified image
(``metadata.yaml`` plus ``rootfs/``) and imported once under the alias
``nlxd-bench-busybox``. Two Incus sides are timed: the CLI, ``incus
launch`` as a subprocess until it returns (the container is RUNNING),
and its REST API over its unix socket, the same create-with-``start``
request and ``/wait`` as the nlxd side. The order of the sides rotates
from round to round; teardown is not timed.

    sudo .venv/bin/python benchmarks/api_launch.py [--runs 20] [--json out]
    sudo .venv/bin/python benchmarks/api_launch.py --incus [--runs 20]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import requests

from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.testing.busybox import MTIME, build_busybox_tarball

BASE = Path("/var/tmp/nova-lxd-bench")
INCUS_SOCKET = Path("/var/lib/incus/unix.socket")
INCUS_ALIAS = "nlxd-bench-busybox"


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
               image: str, source_key: str = "fingerprint") -> float:
    started = time.perf_counter()
    r = session.post(f"{base}/1.0/instances", json={
        "name": name, "source": {"type": "image", source_key: image},
        "start": True})
    r.raise_for_status()
    op = session.get(f"{base}{r.json()['operation']}/wait",
                     params={"timeout": 120}).json()["metadata"]
    elapsed = time.perf_counter() - started
    if op["status"] != "Success":
        raise SystemExit(f"API launch failed: {op['err']}")
    return elapsed


def unified_tarball(rootfs_tarball: Path, dest: Path) -> Path:
    """Wrap a rootfs tarball into an LXD/Incus unified image tarball:
    ``metadata.yaml`` and the same members under ``rootfs/``."""
    metadata = (f"architecture: {os.uname().machine}\n"
                f"creation_date: {MTIME}\n"
                "properties:\n  os: busybox\n  description: nova-lxd busybox\n"
                ).encode()
    with tarfile.open(rootfs_tarball) as src, \
            tarfile.open(dest, "w:gz", format=tarfile.PAX_FORMAT) as out:
        info = tarfile.TarInfo("metadata.yaml")
        info.size, info.mtime, info.mode = len(metadata), MTIME, 0o644
        out.addfile(info, io.BytesIO(metadata))
        for member in src:
            name = member.name.removeprefix("./").removeprefix(".")
            member.name = f"rootfs/{name}" if name else "rootfs"
            out.addfile(member, src.extractfile(member)
                        if member.isfile() else None)
    return dest


def incus_import(rootfs_tarball: Path, workdir: Path) -> str:
    """Import the busybox rootfs into Incus under INCUS_ALIAS."""
    unified = unified_tarball(rootfs_tarball, workdir / "unified.tar.gz")
    subprocess.run(["incus", "image", "delete", INCUS_ALIAS],
                   capture_output=True, check=False)
    subprocess.run(["incus", "image", "import", str(unified), "--alias",
                    INCUS_ALIAS], check=True, stdout=subprocess.DEVNULL)
    return INCUS_ALIAS


def incus_cli_launch(name: str, alias: str) -> float:
    started = time.perf_counter()
    # stderr captured: incus warns on every launch that there is no NIC.
    done = subprocess.run(["incus", "launch", alias, name],
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"incus launch failed: {done.stderr.strip()}")
    return elapsed


def incus_api_launch(base: str, session: requests.Session, name: str,
                     alias: str) -> float:
    return api_launch(base, session, name, alias, source_key="alias")


def incus_delete(base: str, session: requests.Session, name: str) -> None:
    r = session.put(f"{base}/1.0/instances/{name}/state",
                    json={"action": "stop", "force": True})
    if r.ok:
        session.get(f"{base}{r.json()['operation']}/wait",
                    params={"timeout": 60})
    r = session.delete(f"{base}/1.0/instances/{name}")
    if r.ok:
        session.get(f"{base}{r.json()['operation']}/wait",
                    params={"timeout": 60})


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
    parser.add_argument("--incus", action="store_true",
                        help="also launch with Incus (CLI and REST API)")
    args = parser.parse_args()
    BASE.mkdir(parents=True, exist_ok=True)
    BASE.chmod(0o711)
    root = Path(tempfile.mkdtemp(prefix="api-", dir=BASE))
    root.chmod(0o711)
    proc = start_daemon(root)
    engine = Engine(EngineConfig(root=root, stop_timeout=5))
    sides = ["api", "engine"] + (["incus-cli", "incus-api"]
                                 if args.incus else [])
    results: dict[str, list[float]] = {side: [] for side in sides}
    ibase = isession = None
    tag = root.name.removeprefix("api-").replace("_", "")[:6].lower()
    try:
        base, session = unix_session(root / "daemon" / "unix.socket")
        tarball = build_busybox_tarball(root / "busybox.tar.gz")
        r = session.post(f"{base}/1.0/images", data=tarball.read_bytes())
        image = session.get(f"{base}{r.json()['operation']}/wait").json()[
            "metadata"]["metadata"]["fingerprint"]
        if args.incus:
            ibase, isession = unix_session(INCUS_SOCKET)
            alias = incus_import(tarball, root)
        for i in range(args.runs + 1):  # the first round warms caches
            timed = {
                "api": lambda i=i: api_launch(base, session, f"api{i}", image),
                "engine": lambda i=i: engine_launch(engine, f"eng{i}", image),
                "incus-cli": lambda i=i: incus_cli_launch(
                    f"nb{tag}c{i}", alias),
                "incus-api": lambda i=i: incus_api_launch(
                    ibase, isession, f"nb{tag}a{i}", alias),
            }
            order = sides[i % len(sides):] + sides[:i % len(sides)]
            round_ = {side: timed[side]() for side in order}
            for name in (f"api{i}", f"eng{i}"):
                engine.delete(name, force=True)
            if args.incus:
                for name in (f"nb{tag}c{i}", f"nb{tag}a{i}"):
                    incus_delete(ibase, isession, name)
            if i:
                for side in sides:
                    results[side].append(round_[side])
    finally:
        for record in engine.list():
            engine.delete(record.name, force=True)
        if ibase is not None:
            for url in isession.get(f"{ibase}/1.0/instances").json()[
                    "metadata"]:
                name = url.rsplit("/", 1)[-1]
                if name.startswith(f"nb{tag}"):
                    incus_delete(ibase, isession, name)
            subprocess.run(["incus", "image", "delete", INCUS_ALIAS],
                           capture_output=True, check=False)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(root, ignore_errors=True)
    summary = {side: {"median": statistics.median(v), "p90": p90(v)}
               for side, v in results.items()}
    summary["ratio"] = summary["api"]["median"] / \
        summary["engine"]["median"]
    for side in sides:
        print(f"{side:9s} median {summary[side]['median'] * 1000:7.1f} ms"
              f"  p90 {summary[side]['p90'] * 1000:7.1f} ms")
    print(f"ratio api/engine (medians): {summary['ratio']:.2f}")
    for side in sides[2:]:
        summary[f"ratio_{side}"] = summary[side]["median"] / \
            summary["api"]["median"]
        print(f"ratio {side}/api (medians): "
              f"{summary[f'ratio_{side}']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, **summary,
                                         "samples": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
