"""SIGKILL during a snapshot or a restore, on both pool drivers: after
recovery (a new Engine) the container is thawed, starts, its files are
intact, and no stray subvolume or partial directory is left.

The operation runs in a child process whose ``snapshots.crash_hook``
kills it at a named point, at once or after a delay (so that the kill
lands inside the pool's copy or subvolume call)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nova_lxd.engine.api import Engine

from .test_snapshots import pool_config, sh

CHILD = """
import os, signal, sys, threading
from pathlib import Path
from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.containers import snapshots

root, driver, size, op, point, delay = sys.argv[1:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def hook(name):
    if name == point:
        if float(delay):
            threading.Timer(float(delay), die).start()
        else:
            die()

snapshots.crash_hook = hook
engine = Engine(EngineConfig(root=Path(root), storage_driver=driver,
                             storage_size=int(size), stop_timeout=10.0),
                recover=False)
if op == "create":
    engine.snapshot_create("victim", "s2")
else:
    engine.snapshot_restore("victim", "s1")
os._exit(3)  # not killed: the point was never reached
"""

DEBRIS = (".partial-", ".old-", ".restored-", ".rootfs-old",
          ".rootfs-restored")

CASES = [
    ("create", "intent", 0), ("create", "frozen", 0),
    ("create", "frozen", 0.01), ("create", "snapshotted", 0),
    ("restore", "intent", 0), ("restore", "stopped", 0),
    ("restore", "stopped", 0.03), ("restore", "restored", 0),
]


def debris(engine: Engine) -> list[Path]:
    if engine.pool.driver == "btrfs":
        places = [engine.pool.root / "containers",
                  engine.pool.root / "snapshots" / "victim"]
    else:
        places = [engine.config.containers_dir / "victim",
                  engine.config.containers_dir / "victim" / "snapshots"]
    return [p for d in places if d.is_dir() for p in d.iterdir()
            if p.name.startswith(DEBRIS)]


@pytest.mark.parametrize("driver", ["dir", "btrfs"])
@pytest.mark.parametrize(("op", "point", "delay"), CASES)
def test_sigkill_during_snapshot_operation(engine_root, busybox_tarball,
                                           driver, op, point, delay):
    config = pool_config(engine_root, driver)
    engine = Engine(config)
    engine.import_image(busybox_tarball, aliases=("busybox",))
    engine.launch("victim", "busybox", root_disk=256 * 2 ** 20)
    # Enough data that a copy (dir) takes longer than the delay.
    sh(engine, "victim", "echo one > /data; "
       "dd if=/dev/zero of=/blob bs=1M count=48 2>/dev/null")
    engine.snapshot_create("victim", "s1")
    sh(engine, "victim", "echo two > /data")

    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(engine_root), driver,
         str(config.storage_size), op, point, str(delay)],
        capture_output=True, text=True, timeout=120)
    # A delayed kill can come too late for a btrfs snapshot (~15 ms):
    # the operation then ends normally (exit 3), still checked below.
    allowed = (-9, 3) if delay and driver == "btrfs" else (-9,)
    assert child.returncode in allowed, (child.returncode,
                                         child.stderr[-2000:])

    if child.returncode == -9:
        dead = Engine(pool_config(engine_root, driver), recover=False)
        if point == "frozen" and not delay:
            assert dead.status("victim") == "FROZEN"
        if delay and driver == "dir":  # killed inside the copy
            assert debris(dead)
    again = Engine(pool_config(engine_root, driver))  # recovers
    assert again.status("victim") in ("RUNNING", "STOPPED")  # not FROZEN
    assert debris(again) == []
    if driver == "btrfs":  # a restore moves the quota: it is back
        assert again.pool.usage("victim").quota_bytes == 256 * 2 ** 20
    listed = [s.name for s in again.snapshot_list("victim")]
    assert sorted(again.pool.list_snapshots("victim")) == sorted(listed)
    assert "s1" in listed
    if again.status("victim") == "STOPPED":
        again.start("victim")
    data = sh(again, "victim", "cat /data")
    if op == "create" or point == "intent":
        assert data == "two\n"
    else:
        assert data in ("one\n", "two\n")  # before or after, never torn
    assert sh(again, "victim", "wc -c < /blob").strip() == str(48 * 2 ** 20)
    # Snapshots work again: the name of an undone one can be reused.
    again.snapshot_create("victim", "s2" if "s2" not in listed else "s3")
    again.snapshot_restore("victim", "s1")
    assert sh(again, "victim", "cat /data") == "one\n"


COPY_CHILD = """
import os, signal, sys
from pathlib import Path
from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.containers import snapshots

root, driver, size = sys.argv[1:]
snapshots.crash_hook = lambda point: (
    os.kill(os.getpid(), signal.SIGKILL) if point == "copying" else None)
Engine(EngineConfig(root=Path(root), storage_driver=driver,
                    storage_size=int(size)), recover=False
       ).copy("source", "target")
os._exit(3)
"""


@pytest.mark.parametrize("driver", ["dir", "btrfs"])
def test_sigkill_while_copying_a_running_container(engine_root,
                                                   busybox_tarball, driver):
    """The copy froze its source: recovery thaws it and removes the
    half-made target."""
    config = pool_config(engine_root, driver)
    engine = Engine(config)
    engine.import_image(busybox_tarball, aliases=("busybox",))
    engine.launch("source", "busybox")
    child = subprocess.run(
        [sys.executable, "-c", COPY_CHILD, str(engine_root), driver,
         str(config.storage_size)], capture_output=True, text=True,
        timeout=120)
    assert child.returncode == -9, child.stderr[-2000:]
    dead = Engine(pool_config(engine_root, driver), recover=False)
    assert dead.status("source") == "FROZEN"
    again = Engine(pool_config(engine_root, driver))
    assert again.status("source") == "RUNNING"
    assert [r.name for r in again.list()] == ["source"]
    assert not again.pool.volume_path("target").exists()
    again.copy("source", "target")  # the name is free again
    again.start("target")
    assert sh(again, "target", "hostname") == "target\n"
