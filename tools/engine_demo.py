#!/usr/bin/env python3
"""The main job at this stage: a busybox container through the engine.

Builds a small busybox image, imports it, launches a container, shows it
running (state, init pid, ``cat /etc/hostname`` inside), prints its console
log and removes it. Run by tools/main-job.sh after tools/setup.sh.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from oslo_log import log as logging

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.testing.busybox import build_busybox_tarball

NAME = "nova-lxd-demo"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path,
                        default=EngineConfig().root,
                        help="engine root (default: %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the container running")
    args = parser.parse_args()
    logging.register_options(logging.cfg.CONF)
    logging.setup(logging.cfg.CONF, "nova-lxd-demo")

    engine = Engine(EngineConfig(root=args.root))
    with tempfile.TemporaryDirectory() as tmp:
        tarball = build_busybox_tarball(Path(tmp) / "busybox.tar.gz")
        image = engine.import_image(tarball, aliases=("busybox",))
    print(f"image   busybox  {image.fingerprint[:12]}  "
          f"{image.size / 1024:.0f} KiB ({image.compression})")

    try:
        engine.delete(NAME, force=True)  # left by an interrupted run
    except errors.ContainerNotFound:
        pass
    started = time.monotonic()
    state = engine.launch(NAME, "busybox",
                          limits={"limits.memory": "128MiB",
                                  "limits.processes": 200})
    record = engine.get(NAME)
    print(f"launch  {NAME} in {(time.monotonic() - started) * 1000:.0f} ms")
    print(f"state   {state.status}  init pid {state.pid}  "
          f"memory {(state.memory_bytes or 0) / 1024:.0f} KiB  "
          f"host uid of root {record.idmap.uid_base if record.idmap else 0}")
    result = engine.execute(NAME, ["cat", "/etc/hostname"])
    print(f"exec    cat /etc/hostname -> {result.stdout.decode().strip()!r} "
          f"(exit {result.exit_code})")
    deadline = time.monotonic() + 5
    while "booted" not in engine.console_log(NAME) and (
            time.monotonic() < deadline):
        time.sleep(0.05)
    print("console log:")
    for line in engine.console_log(NAME).splitlines():
        print(f"  | {line}")
    if args.keep:
        print(f"kept    {NAME} running under {args.root}")
        return 0
    clean = engine.stop(NAME, timeout=10)
    engine.delete(NAME)
    print(f"removed {NAME} (clean shutdown: {clean})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except errors.EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
