"""Records on disk: other engine processes and crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from nova_lxd.engine import errors, idmap
from nova_lxd.engine.api import Engine
from nova_lxd.engine.locks import FileLock

from ..conftest import make_config


def test_second_engine_sees_same_containers(engine, image):
    engine.launch("shared", "busybox")
    engine.create("quiet", "busybox")
    other = Engine(make_config(engine.config.root))
    assert sorted(r.name for r in other.list()) == ["quiet", "shared"]
    assert other.state("shared").status == "RUNNING"
    assert other.state("shared").pid == engine.state("shared").pid
    assert other.state("quiet").status == "STOPPED"
    other.stop("shared", force=True)
    assert engine.state("shared").status == "STOPPED"


def test_operations_are_serialised_across_processes(engine, image):
    engine.create("locked", "busybox")
    holder = FileLock(engine.config.locks_dir / "container-locked.lock")
    impatient = Engine(make_config(engine.config.root, lock_timeout=0.3))
    child = os.fork()
    if child == 0:  # another process holds the container's lock
        holder.acquire()
        time.sleep(3)
        os._exit(0)
    try:
        time.sleep(0.3)
        with pytest.raises(errors.Busy):
            impatient.start("locked")
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    impatient.start("locked")  # the kernel dropped the dead holder's lock
    assert engine.state("locked").status == "RUNNING"


def _big_image(path, busybox_tarball):
    """busybox plus a few hundred MB of data, so that unpacking takes long
    enough to be interrupted."""
    blob = path.parent / "blob"
    with open(blob, "wb") as f:
        f.truncate(0)
        chunk = os.urandom(1 << 20)
        for _ in range(300):
            f.write(chunk)
    with tarfile.open(busybox_tarball) as src, \
            tarfile.open(path, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member)
                        if member.isfile() else None)
        dst.add(blob, arcname="./var/blob")
    blob.unlink()
    return path


def test_sigkilled_create_leaves_no_garbage(engine, image, busybox_tarball,
                                           tmp_path):
    big = engine.import_image(_big_image(tmp_path / "big.tar",
                                         busybox_tarball), aliases=("big",))
    code = ("import sys; from pathlib import Path;"
            "from nova_lxd.engine.api import Engine;"
            "from nova_lxd.engine.config import EngineConfig;"
            "Engine(EngineConfig(root=Path(sys.argv[1])))"
            ".create('doomed', 'big')")
    proc = subprocess.Popen([sys.executable, "-c", code,
                             str(engine.config.root)])
    rootfs = engine.config.containers_dir / "doomed" / "rootfs"
    deadline = time.monotonic() + 30
    while not (rootfs / "bin").exists():
        assert proc.poll() is None, "create ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (engine.config.containers_dir / "doomed").exists()

    survivor = Engine(make_config(engine.config.root))  # recovers
    assert not (engine.config.containers_dir / "doomed").exists()
    assert survivor.list() == []
    assert not (engine.config.locks_dir / "container-doomed.lock").exists()
    # Its id range is free again and the name can be used.
    record = survivor.create("doomed", "busybox")
    first = idmap.read_subordinate_ranges(Path("/etc/subuid"), "root")[0]
    assert record.idmap.uid_base == first.start
    survivor.delete_image(big.fingerprint)


def test_interrupted_delete_is_finished_by_recovery(engine, image):
    """A delete killed after it wrote its intent: the next engine
    finishes it, also killing a container that still runs."""
    from nova_lxd.engine.containers import records
    engine.launch("half", "busybox")
    store = records.RecordStore(engine.config.containers_dir)
    store.save(store.load("half").replace(phase=records.DELETING))
    assert engine.list() == []  # not usable any more
    survivor = Engine(make_config(engine.config.root))
    assert not (engine.config.containers_dir / "half").exists()
    assert survivor.list() == []
    with pytest.raises(errors.ContainerNotFound):
        survivor.state("half")
