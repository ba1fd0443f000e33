"""Resizing and rescuing real containers, on both storage pools."""

from __future__ import annotations

import io
import tarfile

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine
from nova_lxd.engine.storage.base import DiskShrinkRefused
from nova_lxd.testing.busybox import build_busybox_tarball
from tests.functional.conftest import make_config

from .helpers import cgroup_file

MiB = 1024 * 1024


@pytest.fixture(params=["dir", "btrfs"])
def pool_engine(request, engine_root, busybox_tarball) -> Engine:
    engine = Engine(make_config(engine_root, storage_driver=request.param,
                                storage_size=1024 * MiB))
    engine.import_image(busybox_tarball, aliases=("busybox",))
    return engine


def memory_limit(pid: int) -> int:
    try:
        return int(cgroup_file(pid, "memory", "memory.limit_in_bytes"))
    except FileNotFoundError:
        value = cgroup_file(pid, "memory", "memory.max")
        return -1 if value == "max" else int(value)


def test_limits_change_while_running(engine, image):
    engine.launch("grow", "busybox", limits={"limits.memory": "128MiB",
                                             "limits.processes": 50})
    pid = engine.state("grow").pid
    engine.update("grow", limits={"limits.memory": "256MiB",
                                  "limits.cpu": "1"})
    assert engine.state("grow").pid == pid  # never restarted
    assert memory_limit(pid) == 256 * MiB
    assert cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"
    # A limit that went away is reset, not left behind.
    assert cgroup_file(pid, "pids", "pids.max") == "max"
    assert engine.get("grow").limits == {"limits.memory": "256MiB",
                                         "limits.cpu": "1"}
    # And the next start uses the new configuration.
    engine.restart("grow", force=True)
    assert memory_limit(engine.state("grow").pid) == 256 * MiB


def test_refused_live_change_keeps_everything(engine, image):
    engine.launch("hog", "busybox", limits={"limits.memory": "256MiB"})
    # Hold ~40 MiB of memory inside, then ask for 8 MiB.
    engine.execute("hog", ["sh", "-c",
                           "mkdir -p /dev/shm && mount -t tmpfs tmpfs "
                           "/dev/shm 2>/dev/null; dd if=/dev/zero "
                           "of=/dev/shm/fill bs=1M count=40"])
    pid = engine.state("hog").pid
    with pytest.raises(errors.OperationFailed, match="refused"):
        engine.update("hog", limits={"limits.memory": "8MiB"})
    assert memory_limit(pid) == 256 * MiB
    assert engine.get("hog").limits == {"limits.memory": "256MiB"}


def test_root_disk_grows_and_refuses_shrink_below_use(pool_engine):
    pool_engine.launch("disk", "busybox", root_disk=32 * MiB)
    pool_engine.update("disk", root_disk=64 * MiB)
    record = pool_engine.get("disk")
    assert record.root_disk_bytes == 64 * MiB
    if pool_engine.pool.driver == "btrfs":
        assert pool_engine.pool.usage("disk").quota_bytes == 64 * MiB
        assert pool_engine.execute("disk", [
            "dd", "if=/dev/zero", "of=/f", "bs=1M", "count=40",
            "conv=fsync"]).exit_code == 0
        with pytest.raises(DiskShrinkRefused):
            pool_engine.update("disk", root_disk=1 * MiB)
        assert pool_engine.pool.usage("disk").quota_bytes == 64 * MiB
    else:
        assert not record.root_disk_enforced


def test_rescue_boots_the_rescue_image_with_the_rootfs_mounted(
        pool_engine, tmp_path):
    rescue_tar = build_busybox_tarball(tmp_path / "rescue.tar")
    with tarfile.open(rescue_tar, "a") as tar:
        info = tarfile.TarInfo("./etc/rescue-image")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"yes"))
    pool_engine.import_image(rescue_tar, aliases=("rescue",))

    pool_engine.launch("broken", "busybox")
    pool_engine.execute("broken", ["sh", "-c", "echo mine > /etc/own"])
    with pytest.raises(errors.InvalidState):
        pool_engine.rescue("broken", "rescue")
    pool_engine.stop("broken", force=True)
    pool_engine.rescue("broken", "rescue")
    pool_engine.start("broken")

    def run(*cmd: str):
        return pool_engine.execute("broken", list(cmd))

    assert run("cat", "/etc/rescue-image").stdout == b"yes"
    assert run("cat", "/mnt/rescue/etc/own").stdout == b"mine\n"
    # The instance's files keep their owners as the container sees them.
    assert run("stat", "-c", "%u", "/mnt/rescue/etc/own").stdout == b"0\n"
    run("sh", "-c", "echo fixed > /mnt/rescue/etc/own")
    pool_engine.stop("broken", force=True)
    pool_engine.unrescue("broken")
    pool_engine.start("broken")
    assert run("cat", "/etc/own").stdout == b"fixed\n"
    assert run("test", "-e", "/etc/rescue-image").exit_code != 0
    rescue_volume = pool_engine.pool.volume_path("broken.rescue")
    assert not rescue_volume.exists()
    pool_engine.stop("broken", force=True)
    pool_engine.rescue("broken", "rescue")
    pool_engine.delete("broken")
    assert not rescue_volume.exists()
