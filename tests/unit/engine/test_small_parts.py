"""Names, init detection, records, console reading, locks and reverts."""

import multiprocessing
import os

import pytest

from nova_lxd.engine import errors, fsutil, names
from nova_lxd.engine.containers import console, init_system, records
from nova_lxd.engine.idmap import Idmap
from nova_lxd.engine.locks import FileLock
from nova_lxd.engine.revert import Reverter


@pytest.mark.parametrize("name", ["a", "web-1", "A" + "b" * 62])
def test_valid_names(name):
    assert names.validate_container_name(name) == name


@pytest.mark.parametrize("name", ["", None, "1a", "-a", "a-", "a.b", "a/b",
                                  "a" * 64, "a b", "ä"])
def test_invalid_names(name):
    with pytest.raises(errors.InvalidName):
        names.validate_container_name(name)


@pytest.mark.parametrize("target,signal", [
    ("/bin/busybox", "SIGUSR1"),
    ("../lib/systemd/systemd", "SIGRTMIN+3"),
    (None, "SIGPWR"),
])
def test_halt_signal(tmp_path, target, signal):
    (tmp_path / "sbin").mkdir()
    if target:
        os.symlink(target, tmp_path / "sbin" / "init")
    assert init_system.halt_signal(tmp_path) == signal


def test_halt_signal_never_follows_links_to_the_host(tmp_path):
    (tmp_path / "sbin").mkdir()
    os.symlink("/proc/self/exe", tmp_path / "sbin" / "init")
    assert init_system.halt_signal(tmp_path) == "SIGPWR"


def test_record_roundtrip(tmp_path):
    store = records.RecordStore(tmp_path)
    (tmp_path / "c1").mkdir()
    record = records.ContainerRecord(
        name="c1", image="ab" * 32, idmap=Idmap(1000000, 1000000, 65536),
        limits={"limits.memory": "1GiB"}, phase=records.READY)
    store.save(record)
    assert store.load("c1") == record
    assert store.names() == ["c1"]
    with pytest.raises(errors.ContainerNotFound):
        store.load("c2")
    (tmp_path / "c1" / "record.json").write_text("{not json")
    with pytest.raises(errors.OperationFailed):
        store.load("c1")


def test_console_log_joins_rotated_file(tmp_path):
    log = tmp_path / "console.log"
    (tmp_path / "console.log.1").write_bytes(b"old\n")
    log.write_bytes(b"new\n")
    assert console.read_console_log(log) == "old\nnew\n"
    assert console.read_console_log(log, max_bytes=6) == "d\nnew\n"
    assert console.read_console_log(tmp_path / "none.log") == ""
    console.clear_console_log(log)
    assert console.read_console_log(log) == ""
    console.clear_console_log(tmp_path / "none.log")  # nothing to clear


def test_console_tool_sits_next_to_lxc_start():
    assert console.console_tool("lxc-start") == "lxc-console"
    assert console.console_tool("/opt/lxc/bin/lxc-start") == \
        "/opt/lxc/bin/lxc-console"


def test_write_in_rootfs_refuses_symlinked_dirs(tmp_path):
    rootfs = tmp_path / "rootfs"
    outside = tmp_path / "outside"
    rootfs.mkdir()
    outside.mkdir()
    os.symlink(outside, rootfs / "etc")
    with pytest.raises(OSError):
        fsutil.write_in_rootfs(rootfs, "etc/hostname", b"x\n")
    assert not (outside / "hostname").exists()
    (rootfs / "var").mkdir()
    fsutil.write_in_rootfs(rootfs, "var/f", b"ok", uid=5, gid=6)
    assert (rootfs / "var" / "f").read_bytes() == b"ok"
    assert os.stat(rootfs / "var" / "f").st_uid == 5


def _hold(path, ready, release):
    with FileLock(path):
        ready.set()
        release.wait(10)


def test_lock_excludes_other_processes(tmp_path):
    path = tmp_path / "x.lock"
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold, args=(path, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(errors.Busy):
            FileLock(path, timeout=0.2).acquire()
        assert FileLock(path).acquire(blocking=False) is False
    finally:
        release.set()
        proc.join()
    lock = FileLock(path, timeout=1)
    assert lock.acquire() is True
    lock.release(unlink=True)
    assert not path.exists()


def test_reverter_undoes_in_reverse_only_on_failure():
    done = []
    with pytest.raises(RuntimeError), Reverter() as revert:
        revert.add(lambda: done.append(1))
        revert.add(lambda: done.append(2))
        raise RuntimeError
    assert done == [2, 1]
    with Reverter() as revert:
        revert.add(lambda: done.append(3))
        revert.success()
    assert done == [2, 1]


def test_net_dev_parsing():
    from nova_lxd.engine.containers.state import parse_net_dev
    text = ("Inter-|   Receive                            |  Transmit\n"
            " face |bytes packets errs drop fifo frame compressed "
            "multicast|bytes packets errs drop fifo colls carrier "
            "compressed\n"
            "    lo:    120       2    0    0    0     0          0"
            "         0      120       2    0    0    0     0       0"
            "          0\n"
            "  eth0: 5000 10 1 2 0 0 0 0 700 7 0 3 0 0 0 0\n")
    counters = parse_net_dev(text)
    assert counters["lo"]["rx_bytes"] == 120
    assert counters["eth0"] == {
        "rx_bytes": 5000, "rx_packets": 10, "rx_errors": 1, "rx_drop": 2,
        "tx_bytes": 700, "tx_packets": 7, "tx_errors": 0, "tx_drop": 3}
