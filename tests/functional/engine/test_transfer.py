"""Moving a container between two engines (two hosts' roots on this
machine): the checked stream, every pool pairing, and the failures that
must leave the source as it was and nothing on the target."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine
from nova_lxd.engine.transfer.container import TransferFailed
from nova_lxd.engine.transfer.stream import TransferCorrupt
from tests.functional.conftest import make_config
from tests.functional.engine.helpers import sh
from tests.functional.engine.test_storage import btrfs_engine

MiB = 1024 * 1024


def _engine(root: Path, driver: str, **overrides) -> Engine:
    if driver == "btrfs":
        return btrfs_engine(root, **overrides)
    return Engine(make_config(root, **overrides))


def leftovers(engine: Engine, name: str) -> list[str]:
    """Whatever of ``name`` exists on the engine's root."""
    root = engine.config.root
    found = [str(p) for p in root.rglob(f"*{name}*")]
    return found + [r.name for r in engine.list()]


def send_bytes(engine: Engine, name: str, **kwargs) -> bytes:
    out = io.BytesIO()
    engine.send(name, out, **kwargs)
    return out.getvalue()


@pytest.mark.parametrize("pools", [("dir", "btrfs"), ("btrfs", "dir"),
                                   ("btrfs", "btrfs")])
def test_move_with_snapshots_between_pools(pools, engine_root, target_root,
                                           busybox_tarball):
    source = _engine(engine_root, pools[0])
    target = _engine(target_root, pools[1])
    source.import_image(busybox_tarball, aliases=("busybox",))
    source.create("mover", "busybox", limits={"limits.memory": "128MiB"},
                  hostname="mover-host", metadata={"uuid": "u-1"})
    source.start("mover")
    sh(source, "mover", "echo one > /data; chown 1000:1000 /data; "
                        "ln -s /data /link; ln /data /hard; "
                        "chmod 4755 /bin/busybox")
    source.snapshot_create("mover", "snap1")
    sh(source, "mover", "echo two > /data; rm /link")
    before = sh(source, "mover", "stat -c '%u %g %a' /data /bin/busybox")

    stream = send_bytes(source, "mover")
    assert source.status("mover") == "RUNNING"      # the source untouched
    record = target.receive("mover", io.BytesIO(stream))
    assert record.hostname == "mover-host"
    assert record.metadata == {"uuid": "u-1"}
    assert record.limits == {"limits.memory": "128MiB"}
    assert target.status("mover") == "STOPPED"
    target.start("mover")
    assert sh(target, "mover", "cat /data") == "two\n"
    assert sh(target, "mover", "stat -c '%u %g %a' /data /bin/busybox"
              ) == before
    assert sh(target, "mover", "test ! -e /link && echo gone") == "gone\n"
    assert [s.name for s in target.snapshot_list("mover")] == ["snap1"]
    target.snapshot_restore("mover", "snap1")
    assert sh(target, "mover", "cat /data; readlink /link") == \
        "one\n/data\n"
    assert sh(target, "mover", "stat -c %h /data") == "2\n"  # hard link
    host_uid = os.stat(target.containers.rootfs("mover") / "data").st_uid
    record = target.get("mover")
    expect = 1000 if record.idmapped_mount else record.idmap.uid_base + 1000
    assert host_uid == expect


def test_stream_is_checked_before_commit(engine, image, target_root):
    engine.create("c1", "busybox")
    stream = bytearray(send_bytes(engine, "c1"))
    target = Engine(make_config(target_root))

    flipped = bytearray(stream)
    flipped[len(flipped) // 2] ^= 0x01
    with pytest.raises((TransferCorrupt, errors.InvalidImage)):
        target.receive("c1", io.BytesIO(bytes(flipped)))
    assert leftovers(target, "c1") == []

    with pytest.raises(TransferCorrupt, match="ended early"):
        target.receive("c1", io.BytesIO(bytes(stream[:len(stream) - 40])))
    assert leftovers(target, "c1") == []

    # A trailer claiming another checksum: refused at the very end.
    body, trailer = bytes(stream).rsplit(b'{"sha256": "', 1)
    forged = body + b'{"sha256": "' + b"0" * 64 + trailer[64:]
    with pytest.raises(TransferCorrupt, match="sha256"):
        target.receive("c1", io.BytesIO(forged))
    assert leftovers(target, "c1") == []

    target.receive("c1", io.BytesIO(bytes(stream)))   # the real one works
    assert [r.name for r in target.list()] == ["c1"]


def test_existing_name_is_refused_and_kept(engine, image, target_root,
                                           busybox_tarball):
    target = Engine(make_config(target_root))
    target.import_image(busybox_tarball, aliases=("busybox",))
    target.create("c1", "busybox")
    engine.create("c1", "busybox")
    with pytest.raises(errors.ContainerExists):
        target.receive("c1", io.BytesIO(send_bytes(engine, "c1")))
    assert [r.name for r in target.list()] == ["c1"]
    target.start("c1")


def test_full_target_pool_leaves_nothing(engine_root, target_root,
                                         busybox_tarball):
    source = Engine(make_config(engine_root))
    source.import_image(busybox_tarball, aliases=("busybox",))
    source.create("big", "busybox")
    source.start("big")
    # Incompressible data larger than the whole target pool.
    sh(source, "big", "dd if=/dev/urandom of=/blob bs=1M count=160 "
                      "2>/dev/null")
    source.stop("big")
    target = btrfs_engine(target_root, storage_size=128 * MiB)
    with pytest.raises(TransferFailed, match="storage pool is full"):
        target.receive("big", io.BytesIO(send_bytes(source, "big")))
    assert leftovers(target, "big") == []
    source.start("big")                       # the source is as it was
    assert sh(source, "big", "stat -c %s /blob") == f"{160 * MiB}\n"


def test_receiver_killed_midway_is_cleaned_by_recovery(engine, image,
                                                       target_root):
    engine.create("c1", "busybox")
    stream = send_bytes(engine, "c1")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the receiving host
        os.close(write_fd)
        try:
            Engine(make_config(target_root)).receive(
                "c1", os.fdopen(read_fd, "rb"))
        finally:
            os._exit(0)
    os.close(read_fd)
    os.write(write_fd, stream[:len(stream) // 2])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:          # it has begun receiving
        if (target_root / "containers" / "c1").exists():
            break
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(write_fd)
    target = Engine(make_config(target_root), recover=True)
    assert leftovers(target, "c1") == []
    target.receive("c1", io.BytesIO(stream))
    target.start("c1")
    assert target.status("c1") == "RUNNING"


def _fs_used(path: Path) -> int:
    """Bytes used on the file system holding ``path`` (after a sync)."""
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_btrfs_send_between_btrfs_pools_keeps_shared_extents(
        engine_root, target_root, busybox_tarball):
    source = btrfs_engine(engine_root)
    target = btrfs_engine(target_root)
    assert target.transfer_formats() == ["btrfs", "tar"]
    source.import_image(busybox_tarball, aliases=("busybox",))
    source.create("bt", "busybox")
    source.start("bt")
    sh(source, "bt", "dd if=/dev/urandom of=/blob bs=1M count=64 "
                     "2>/dev/null; echo one > /data")
    source.snapshot_create("bt", "s1")
    sh(source, "bt", "echo two > /data")
    source.snapshot_create("bt", "s2")
    sh(source, "bt", "echo three > /data; rm /blob")
    used = _fs_used(target.config.storage_dir)
    stream = send_bytes(source, "bt", formats=tuple(
        target.transfer_formats()))
    assert b'"trees": "btrfs"' in stream[:4096]
    target.receive("bt", io.BytesIO(stream))
    # One copy of the 64 MiB blob for both snapshots, not one each.
    grown = _fs_used(target.config.storage_dir) - used
    assert grown < 100 * MiB, grown
    snap = target.pool.snapshot_path("bt", "s1")
    shown = subprocess.run(["btrfs", "subvolume", "show", str(snap)],
                           capture_output=True, text=True).stdout
    assert "Flags: \t\t\treadonly" in shown or "readonly" in shown
    assert not list((target.config.storage_dir / "incoming").glob("*"))
    target.start("bt")
    assert sh(target, "bt", "cat /data; test -e /blob || echo gone") == \
        "three\ngone\n"
    assert sh(target, "bt", "touch /writable && echo ok") == "ok\n"
    target.stop("bt")
    target.snapshot_restore("bt", "s1")
    target.start("bt")
    assert sh(target, "bt", "cat /data; stat -c %s /blob") == \
        f"one\n{64 * MiB}\n"


def test_btrfs_stream_refused_by_a_dir_pool(engine_root, target_root,
                                            busybox_tarball):
    source = btrfs_engine(engine_root)
    source.import_image(busybox_tarball, aliases=("busybox",))
    source.create("bt", "busybox")
    target = Engine(make_config(target_root))
    assert target.transfer_formats() == ["tar"]
    stream = send_bytes(source, "bt", formats=("btrfs", "tar"))
    with pytest.raises(TransferCorrupt, match="does not take"):
        target.receive("bt", io.BytesIO(stream))
    assert leftovers(target, "bt") == []
