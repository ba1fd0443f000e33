"""Renaming a container on both pool drivers: its files, snapshots,
quota and logs follow; a running or rescued one, a taken name and a bad
name are refused; a failure or a SIGKILL mid-way leaves the container
under one of its names, usable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine

from .test_snapshots import pool_config, sh

MiB = 1024 * 1024


@pytest.fixture(params=["dir", "btrfs"])
def rn_engine(request, engine_root, busybox_tarball) -> Engine:
    engine = Engine(pool_config(engine_root, request.param))
    engine.import_image(busybox_tarball, aliases=("busybox",))
    return engine


def _prepare(engine: Engine, name: str = "before") -> None:
    engine.launch(name, "busybox", root_disk=256 * MiB)
    sh(engine, name, "echo kept > /data")
    engine.snapshot_create(name, "s1")
    sh(engine, name, "echo changed > /data")
    engine.stop(name, force=True)


def _check_renamed(engine: Engine, old: str, new: str) -> None:
    assert [r.name for r in engine.list()] == [new]
    with pytest.raises(errors.ContainerNotFound):
        engine.get(old)
    assert not engine.containers.records.paths(old).directory.exists()
    assert not (engine.config.locks_dir / f"container-{old}.lock").exists()
    config = engine.containers.records.paths(new).lxc_config.read_text()
    assert f"/{old}/" not in config and f"/{old}\n" not in config
    assert [s.name for s in engine.snapshot_list(new)] == ["s1"]
    if engine.pool.driver == "btrfs":
        assert engine.pool.usage(new).quota_bytes == 256 * MiB
    engine.start(new)
    assert sh(engine, new, "cat /data") == "changed\n"
    assert sh(engine, new, "hostname").strip() == new
    engine.stop(new, force=True)
    engine.snapshot_restore(new, "s1")
    engine.start(new)
    assert sh(engine, new, "cat /data") == "kept\n"
    assert engine.console_log(new) is not None


def test_rename_moves_everything(rn_engine):
    e = rn_engine
    _prepare(e)
    record = e.rename("before", "after")
    assert record.name == "after"
    _check_renamed(e, "before", "after")
    e.stop("after", force=True)
    e.delete("after")
    assert e.list() == []


def test_rename_refusals(rn_engine):
    e = rn_engine
    e.launch("one", "busybox")
    e.create("two", "busybox")
    with pytest.raises(errors.InvalidState):
        e.rename("one", "three")  # running
    with pytest.raises(errors.ContainerExists):
        e.rename("two", "one")
    with pytest.raises(errors.ContainerExists):
        e.rename("two", "two")
    with pytest.raises(errors.InvalidName):
        e.rename("two", "bad_name")
    with pytest.raises(errors.ContainerNotFound):
        e.rename("nope", "three")
    e.rescue("two", "busybox")
    with pytest.raises(errors.InvalidState):
        e.rename("two", "three")
    assert sorted(r.name for r in e.list()) == ["one", "two"]
    assert not (e.config.locks_dir / "container-three.lock").exists()
    assert not e.containers.records.paths("three").directory.exists()


def test_failure_mid_rename_is_undone(rn_engine, monkeypatch):
    e = rn_engine
    _prepare(e)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(e.containers, "_write_lxc_config", broken)
    with pytest.raises(OSError):
        e.rename("before", "after")
    monkeypatch.undo()
    assert [r.name for r in e.list()] == ["before"]
    assert not e.containers.records.paths("after").directory.exists()
    e.start("before")
    assert sh(e, "before", "cat /data") == "changed\n"
    e.stop("before", force=True)
    e.rename("before", "after")  # works after the failure
    _check_renamed(e, "before", "after")


CHILD = """
import os, signal, sys
from pathlib import Path
from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.containers import rename

root, driver, size, point = sys.argv[1:]
rename.crash_hook = lambda name: (
    os.kill(os.getpid(), signal.SIGKILL) if name == point else None)
Engine(EngineConfig(root=Path(root), storage_driver=driver,
                    storage_size=int(size)), recover=False
       ).rename("before", "after")
os._exit(3)
"""


@pytest.mark.parametrize("driver", ["dir", "btrfs"])
@pytest.mark.parametrize("point", ["marked", "volume-moved",
                                   "directory-moved"])
def test_sigkill_mid_rename_is_settled(engine_root, busybox_tarball,
                                       driver, point):
    config = pool_config(engine_root, driver)
    engine = Engine(config)
    engine.import_image(busybox_tarball, aliases=("busybox",))
    _prepare(engine)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(engine_root), driver,
         str(config.storage_size), point],
        capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, child.stderr[-2000:]
    again = Engine(pool_config(engine_root, driver))  # recovers
    # The dir pool's volume is the container directory: once moved,
    # the rename is finished rather than undone.
    if point == "directory-moved" or (driver, point) == ("dir",
                                                         "volume-moved"):
        _check_renamed(again, "before", "after")
    else:
        assert [r.name for r in again.list()] == ["before"]
        again.rename("before", "after")
        _check_renamed(again, "before", "after")
