"""Storage pools on real file systems: ``dir`` and a loop-backed ``btrfs``
pool the engine formats and mounts itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine
from nova_lxd.engine.storage.base import StorageError
from tests.functional.conftest import make_config

MiB = 1024 * 1024


def btrfs_engine(root: Path, **overrides) -> Engine:
    overrides.setdefault("storage_size", 1024 * MiB)
    return Engine(make_config(root, storage_driver="btrfs", **overrides))


@pytest.fixture(params=["dir", "btrfs"])
def pool_engine(request, engine_root, busybox_tarball) -> Engine:
    if request.param == "btrfs":
        engine = btrfs_engine(engine_root)
    else:
        engine = Engine(make_config(engine_root))
    engine.import_image(busybox_tarball, aliases=("busybox",))
    return engine


def findmnt(column: str, path: Path) -> str:
    return subprocess.run(["findmnt", "-n", "-o", column, "-T", str(path)],
                          capture_output=True, text=True).stdout.strip()


def is_subvolume(path: Path) -> bool:
    return path.stat().st_ino == 256


def write_mib(engine: Engine, name: str, mib: int) -> int:
    return engine.execute(name, [
        "dd", "if=/dev/zero", "of=/big", "bs=1M", f"count={mib}",
        "conv=fsync"]).exit_code


def test_loop_pool_is_made_and_containers_are_snapshots(engine_root,
                                                         busybox_tarball):
    engine = btrfs_engine(engine_root)
    image = engine.import_image(busybox_tarball, aliases=("busybox",))
    mount = engine.config.storage_dir
    assert findmnt("FSTYPE", mount) == "btrfs"
    assert findmnt("SOURCE", mount).startswith("/dev/loop")
    engine.launch("cow", "busybox")
    rootfs = engine.containers.rootfs("cow")
    image_volume = mount / "images" / image.fingerprint
    assert is_subvolume(rootfs) and is_subvolume(image_volume)
    assert subprocess.run(["btrfs", "property", "get", "-ts",
                           str(image_volume), "ro"], capture_output=True,
                          text=True).stdout.strip() == "ro=true"
    assert engine.execute("cow", ["cat", "/etc/hostname"]).stdout == \
        b"cow\n"
    engine.delete("cow", force=True)
    assert not rootfs.exists()
    engine.delete_image("busybox")
    assert not image_volume.exists()


def test_pool_comes_back_after_a_reboot(engine_root, busybox_tarball):
    engine = btrfs_engine(engine_root)
    engine.import_image(busybox_tarball, aliases=("busybox",))
    engine.launch("survivor", "busybox")
    engine.stop("survivor", force=True)
    # What a reboot does to the pool: unmounted, loop device gone.
    subprocess.run(["umount", str(engine.config.storage_dir)], check=True)
    assert findmnt("FSTYPE", engine.config.storage_dir) != "btrfs"
    again = btrfs_engine(engine_root)
    assert findmnt("FSTYPE", again.config.storage_dir) == "btrfs"
    again.start("survivor")
    assert again.state("survivor").status == "RUNNING"


def test_root_disk_quota_enforced_on_btrfs_only(pool_engine):
    pool_engine.launch("quota", "busybox", root_disk=32 * MiB)
    record = pool_engine.get("quota")
    assert record.root_disk_bytes == 32 * MiB
    if pool_engine.pool.driver == "btrfs":
        assert record.root_disk_enforced
        assert pool_engine.pool.usage("quota").quota_bytes == 32 * MiB
        assert write_mib(pool_engine, "quota", 8) == 0
        assert write_mib(pool_engine, "quota", 64) != 0
    else:
        assert not record.root_disk_enforced
        assert write_mib(pool_engine, "quota", 64) == 0


def test_snapshot_restore_copy_primitives(pool_engine):
    pool = pool_engine.pool
    pool_engine.launch("snappy", "busybox")
    pool_engine.execute("snappy", ["sh", "-c", "echo one > /data"])
    pool_engine.freeze("snappy")
    pool.create_snapshot("snappy", "s1")
    pool_engine.unfreeze("snappy")
    pool_engine.execute("snappy", ["sh", "-c", "echo two > /data"])
    assert pool.list_snapshots("snappy") == ["s1"]
    assert (pool.snapshot_path("snappy", "s1") / "data").read_text() == \
        "one\n"
    # Owners are kept as the container sees them.
    stat = pool.snapshot_path("snappy", "s1").joinpath("data").stat()
    assert stat.st_uid == pool_engine.containers.rootfs("snappy").joinpath(
        "data").stat().st_uid
    pool_engine.stop("snappy", force=True)
    pool.restore_snapshot("snappy", "s1")
    pool_engine.start("snappy")
    assert pool_engine.execute("snappy", ["cat", "/data"]).stdout == \
        b"one\n"
    copied = pool.copy_volume("snappy", "twin", "s1")
    assert (copied / "data").read_text() == "one\n"
    pool.delete_volume("twin")
    pool.delete_snapshot("snappy", "s1")
    assert pool.list_snapshots("snappy") == []
    pool_engine.delete("snappy", force=True)
    assert not pool.snapshot_path("snappy", "s1").exists()


def test_block_device_source_is_formatted_and_foreign_refused(
        engine_root, busybox_tarball, tmp_path):
    devices = []

    def loop(fs: str | None) -> str:
        backing = engine_root / f"disk-{len(devices)}.img"
        with open(backing, "wb") as f:
            f.truncate(512 * MiB)
        if fs:
            subprocess.run([f"mkfs.{fs}", "-q", str(backing)], check=True)
        dev = subprocess.run(["losetup", "--find", "--show", str(backing)],
                             check=True, capture_output=True,
                             text=True).stdout.strip()
        devices.append(dev)
        return dev

    try:
        blank = loop(None)
        engine = btrfs_engine(engine_root, storage_source=blank)
        assert findmnt("SOURCE", engine.config.storage_dir) == blank
        engine.import_image(busybox_tarball, aliases=("busybox",))
        engine.launch("ondisk", "busybox")
        engine.delete("ondisk", force=True)
        subprocess.run(["umount", str(engine.config.storage_dir)],
                       check=True)
        ext4 = loop("ext4")
        with pytest.raises(StorageError, match="ext4"):
            btrfs_engine(engine_root, storage_source=ext4)
    finally:
        subprocess.run(["umount", "-l", str(engine_root / "storage" /
                                             "default")],
                       capture_output=True)
        for dev in devices:
            subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_directory_source_must_be_btrfs(engine_root):
    with pytest.raises(StorageError, match="not btrfs"):
        btrfs_engine(engine_root, storage_source=str(engine_root))


def test_unknown_driver_is_refused(engine_root):
    with pytest.raises(errors.HostError, match="unknown storage driver"):
        Engine(make_config(engine_root, storage_driver="zfs"))


def test_storage_markers(engine):
    token = engine.storage_marker_create()
    other = Engine(make_config(engine.config.root), recover=False)
    assert other.storage_marker_exists(token)
    engine.storage_marker_remove(token)
    assert not other.storage_marker_exists(token)
    with pytest.raises(errors.InvalidInput):
        engine.storage_marker_exists("../../etc/passwd")


def test_export_image_to_a_new_file_for_another_user(engine, image,
                                                     tmp_path):
    dest = tmp_path / "out.tar"
    engine.export_image("busybox", dest, owner=(65534, 65534))
    assert dest.read_bytes() == engine.images.tarball_path(
        image.fingerprint).read_bytes()
    assert (dest.stat().st_uid, dest.stat().st_mode & 0o777) == (65534,
                                                                  0o600)
    # Never over an existing file, nor through a symlink.
    with pytest.raises(FileExistsError):
        engine.export_image("busybox", dest)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        engine.export_image("busybox", tmp_path / "link")
    assert not (tmp_path / "elsewhere").exists()
