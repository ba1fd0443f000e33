"""Snapshots of real containers on both pool drivers: create (running and
stopped), list, restore, delete, copy, export; CRIU's refusal."""

from __future__ import annotations

import subprocess

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine
from nova_lxd.engine.containers import criu

from ..conftest import make_config
from .helpers import sh

MiB = 1024 * 1024


def pool_config(root, driver, **overrides):
    if driver == "btrfs":
        overrides.setdefault("storage_size", 1024 * MiB)
    return make_config(root, storage_driver=driver, **overrides)


@pytest.fixture(params=["dir", "btrfs"])
def snap_engine(request, engine_root, busybox_tarball) -> Engine:
    engine = Engine(pool_config(engine_root, request.param))
    engine.import_image(busybox_tarball, aliases=("busybox",))
    return engine


def test_running_snapshot_restore_and_stopped_stays_stopped(snap_engine):
    e = snap_engine
    e.launch("snappy", "busybox")
    sh(e, "snappy", "echo one > /data")
    snap = e.snapshot_create("snappy", "s1")
    assert snap.name == "s1" and not snap.stateful
    assert snap.frozen_seconds is not None and snap.frozen_seconds > 0
    assert snap.duration_seconds >= snap.frozen_seconds * 0.5
    assert e.status("snappy") == "RUNNING"  # thawed again
    if e.pool.driver == "btrfs":  # the qgroup's referenced bytes
        assert snap.size_bytes > 1024 * 1024
    else:
        assert snap.size_bytes is None
    sh(e, "snappy", "echo two > /data; touch /later")
    assert [s.name for s in e.snapshot_list("snappy")] == ["s1"]

    pid = e.state("snappy").pid
    e.snapshot_restore("snappy", "s1")
    assert e.status("snappy") == "RUNNING"
    assert e.state("snappy").pid != pid  # stopped and started again
    assert sh(e, "snappy", "cat /data") == "one\n"
    assert sh(e, "snappy", "test -e /later || echo gone") == "gone\n"

    e.stop("snappy", force=True)
    stopped = e.snapshot_create("snappy", "s2")
    assert stopped.frozen_seconds is None
    e.start("snappy")
    sh(e, "snappy", "echo three > /data")
    e.stop("snappy", force=True)
    e.snapshot_restore("snappy", "s1")
    assert e.status("snappy") == "STOPPED"
    e.start("snappy")
    assert sh(e, "snappy", "cat /data") == "one\n"
    assert [s.name for s in e.snapshot_list("snappy")] == ["s1", "s2"]

    # A second engine process sees the same snapshots.
    other = Engine(pool_config(e.config.root, e.pool.driver))
    assert [s.name for s in other.snapshot_list("snappy")] == ["s1", "s2"]
    e.snapshot_delete("snappy", "s2")
    assert not e.pool.snapshot_path("snappy", "s2").exists()
    assert [s.name for s in e.snapshot_list("snappy")] == ["s1"]


def test_snapshot_errors(snap_engine):
    e = snap_engine
    e.create("picky", "busybox")
    e.snapshot_create("picky", "s1")
    with pytest.raises(errors.SnapshotExists, match="pick another name"):
        e.snapshot_create("picky", "s1")
    for bad in ("", ".hidden", "-x", "a/b", "..", "x" * 64):
        with pytest.raises(errors.InvalidName):
            e.snapshot_create("picky", bad)
    refusals = [
        (errors.SnapshotNotFound, lambda: e.snapshot_restore("picky", "no")),
        (errors.SnapshotNotFound, lambda: e.snapshot_delete("picky", "no")),
        (errors.SnapshotNotFound, lambda: e.copy("picky", "twin",
                                                 snapshot="no")),
        (errors.SnapshotNotFound, lambda: e.snapshot_export("picky", "no")),
        (errors.ContainerNotFound, lambda: e.snapshot_create("ghost", "s")),
        (errors.ContainerExists, lambda: e.copy("picky", "picky",
                                                snapshot="s1")),
        # A stateful snapshot needs running processes.
        (errors.InvalidState, lambda: e.snapshot_create(
            "picky", "live", stateful=True)),
    ]
    for error, call in refusals:
        with pytest.raises(error):
            call()
    assert not (e.config.containers_dir / "twin").exists()


def test_copy_from_snapshot_and_from_running_container_boot(snap_engine):
    e = snap_engine
    e.launch("origin", "busybox", limits={"limits.memory": "128MiB"},
             metadata={"uuid": "a"})
    sh(e, "origin", "echo one > /data; chown 1000:1000 /data")
    e.snapshot_create("origin", "s1")
    sh(e, "origin", "echo two > /data")

    twin = e.copy("origin", "twin", snapshot="s1", metadata={"uuid": "b"})
    source = e.get("origin")
    assert twin.idmap.uid_base != source.idmap.uid_base  # own id range
    assert twin.limits == source.limits and twin.metadata == {"uuid": "b"}
    assert e.status("twin") == "STOPPED"
    e.start("twin")
    assert sh(e, "twin", "cat /data") == "one\n"
    assert sh(e, "twin", "stat -c %u:%g /data") == "1000:1000\n"
    assert sh(e, "twin", "stat -c %u /bin/busybox") == "0\n"
    assert sh(e, "twin", "hostname") == "twin\n"

    e.copy("origin", "live")  # frozen while copied
    assert e.status("origin") == "RUNNING"
    e.start("live")
    assert sh(e, "live", "cat /data") == "two\n"
    assert e.snapshot_list("live") == []


def test_export_snapshot_and_launch_it(snap_engine):
    e = snap_engine
    e.launch("golden", "busybox")
    sh(e, "golden", "echo baked > /etc/motd; mkdir -p /home/u; "
       "chown 1000:1000 /home/u")
    e.snapshot_create("golden", "s1")
    sh(e, "golden", "echo later > /etc/motd")
    image = e.snapshot_export("golden", "s1", aliases=("golden-s1",),
                              properties={"note": "mine"})
    assert image.compression == "zst" and "golden-s1" in image.aliases
    assert image.properties["note"] == "mine"
    assert image.properties["snapshot_of"] == "golden"
    listing = subprocess.run(
        ["tar", "--zstd", "-tvf", str(e.images.tarball_path(
            image.fingerprint)), "--numeric-owner", "./home/u",
         "./etc/motd"], capture_output=True, text=True, check=True).stdout
    assert "1000/1000" in listing and " 0/0 " in listing

    e.launch("reborn", "golden-s1")
    assert sh(e, "reborn", "cat /etc/motd") == "baked\n"
    assert sh(e, "reborn", "stat -c %u /home/u") == "1000\n"
    with pytest.raises(errors.ImageInUse):
        e.delete_image("golden-s1")


def test_delete_container_removes_its_snapshots(snap_engine):
    e = snap_engine
    e.launch("gone", "busybox")
    e.snapshot_create("gone", "s1")
    e.snapshot_create("gone", "s2")
    paths = [e.pool.snapshot_path("gone", s) for s in ("s1", "s2")]
    assert all(p.is_dir() for p in paths)
    e.delete("gone", force=True)
    assert not any(p.exists() for p in paths)
    assert not paths[0].parent.exists()
    assert not (e.config.containers_dir / "gone").exists()
    # The name can be used again, without the old snapshots.
    e.create("gone", "busybox")
    assert e.snapshot_list("gone") == []


@pytest.mark.parametrize("driver", ["dir", "btrfs"])
def test_chown_shifted_copy_and_export(engine_root, busybox_tarball,
                                       driver):
    """Without idmapped mounts the copy is shifted into its own range
    and the export shifted back to container ids."""
    e = Engine(pool_config(engine_root, driver, idmapped_mounts="never"))
    e.import_image(busybox_tarball, aliases=("busybox",))
    e.launch("shifted", "busybox")
    sh(e, "shifted", "echo one > /data; chown 1000:1000 /data; "
       "chmod 4755 /data")
    e.snapshot_create("shifted", "s1")
    src = e.get("shifted")
    assert not src.idmapped_mount
    twin = e.copy("shifted", "twin", snapshot="s1")
    data = e.containers.rootfs("twin") / "data"
    assert data.stat().st_uid == twin.idmap.uid_base + 1000
    assert data.stat().st_mode & 0o7777 == 0o4755
    root_st = e.containers.rootfs("twin").stat()
    assert root_st.st_uid == twin.idmap.uid_base
    e.start("twin")
    assert sh(e, "twin", "stat -c %u:%a /data") == "1000:4755\n"
    e.snapshot_export("shifted", "s1", aliases=("exp",))
    e.launch("again", "exp")
    assert sh(e, "again", "stat -c %u /data") == "1000\n"
    assert sh(e, "again", "cat /data") == "one\n"


def test_stateful_snapshot_refused_with_criu_reason(snap_engine):
    e = snap_engine
    criu.forget()
    reason = e.stateful_snapshot_problem()
    if reason is None:
        pytest.skip("CRIU works on this host; the refusal cannot be seen")
    e.launch("proc", "busybox")
    with pytest.raises(errors.StatefulSnapshotUnsupported) as caught:
        e.snapshot_create("proc", "live", stateful=True)
    assert reason in str(caught.value)
    assert "stateful=False" in str(caught.value)
    # Nothing was left, and the container keeps running unfrozen.
    assert e.snapshot_list("proc") == []
    assert e.pool.list_snapshots("proc") == []
    assert e.status("proc") == "RUNNING"


def _sleep_pid(e: Engine, name: str) -> str:
    return sh(e, name, "pidof sleep || true").strip()


def test_stateful_snapshot_keeps_processes(snap_engine):
    reason = criu.problem()
    if reason:
        pytest.skip(f"CRIU does not work here: {reason}")
    e = snap_engine
    e.launch("proc", "busybox", stateful=True)
    # Its own session: one whose leader is outside the container (the
    # attached shell) cannot be dumped.
    sh(e, "proc", "setsid sleep 1000 </dev/null >/dev/null 2>&1 &")
    pid = _sleep_pid(e, "proc")
    snap = e.snapshot_create("proc", "live", stateful=True)
    assert snap.stateful
    assert _sleep_pid(e, "proc") == pid            # dumped and restored
    sh(e, "proc", f"kill {pid}; while kill -0 {pid} 2>/dev/null; do "
                  f"sleep 0.05; done; echo after > /data")
    assert _sleep_pid(e, "proc") == ""
    e.snapshot_restore("proc", "live")
    assert e.status("proc") == "RUNNING"
    assert _sleep_pid(e, "proc") == pid            # the process is back
    assert sh(e, "proc", "test -e /data || echo gone") == "gone\n"


def test_stateful_snapshot_needs_a_stateful_container(snap_engine):
    if criu.problem():
        pytest.skip(f"CRIU does not work here: {criu.problem()}")
    e = snap_engine
    e.launch("plain", "busybox")
    with pytest.raises(errors.StatefulSnapshotUnsupported,
                       match="not created stateful"):
        e.snapshot_create("plain", "s", stateful=True)
    assert e.snapshot_list("plain") == []
    assert e.status("plain") == "RUNNING"


def test_failed_restore_starts_the_container_again(snap_engine,
                                                   monkeypatch):
    e = snap_engine
    e.launch("unlucky", "busybox")
    sh(e, "unlucky", "echo one > /data")
    e.snapshot_create("unlucky", "s1")
    sh(e, "unlucky", "echo two > /data")

    def no_space(name, snapshot):
        raise errors.HostError(reason="no space left (simulated)")

    monkeypatch.setattr(e.pool, "restore_snapshot", no_space)
    with pytest.raises(errors.HostError, match="simulated"):
        e.snapshot_restore("unlucky", "s1")
    assert e.status("unlucky") == "RUNNING"
    assert sh(e, "unlucky", "cat /data") == "two\n"
    assert e.snapshots._load("unlucky").restoring is None
    monkeypatch.undo()
    e.snapshot_restore("unlucky", "s1")
    assert sh(e, "unlucky", "cat /data") == "one\n"


def test_privileged_copy_stays_privileged(snap_engine):
    e = snap_engine
    e.create("boss", "busybox", privileged=True)
    e.snapshot_create("boss", "s1")
    twin = e.copy("boss", "boss2", snapshot="s1")
    assert twin.privileged and twin.idmap is None
    e.start("boss2")
    assert sh(e, "boss2", "cat /proc/self/uid_map").split() == \
        ["0", "0", "4294967295"]
    assert e.snapshot_get("boss", "s1").name == "s1"
