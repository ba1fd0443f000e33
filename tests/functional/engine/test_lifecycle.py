"""The whole life of a real container through the engine."""

from __future__ import annotations

import time

import pytest

from nova_lxd.engine import errors

from .helpers import proc_status


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_full_lifecycle(engine, image):
    record = engine.create("life", "busybox")
    assert record.image == image.fingerprint
    assert engine.state("life").status == "STOPPED"
    assert [r.name for r in engine.list()] == ["life"]

    engine.start("life")
    state = engine.state("life")
    assert state.status == "RUNNING"
    assert state.pid and state.pid > 1
    assert proc_status(state.pid)["Name"] == "init"
    assert state.memory_bytes and state.memory_bytes > 0
    assert state.cpu_time_ns is not None and state.cpu_time_ns > 0
    assert state.processes and state.processes >= 1
    assert "lo" in state.addresses

    result = engine.execute("life", ["cat", "/etc/hostname"])
    assert result.exit_code == 0
    assert result.stdout == b"life\n"

    engine.freeze("life")
    assert engine.state("life").status == "FROZEN"
    with pytest.raises(errors.InvalidState):
        engine.freeze("life")
    engine.unfreeze("life")
    assert engine.state("life").status == "RUNNING"

    old_pid = state.pid
    engine.restart("life")
    new_state = engine.state("life")
    assert new_state.status == "RUNNING"
    assert new_state.pid != old_pid

    assert wait_for(lambda: "booted life" in engine.console_log("life"))
    started = time.monotonic()
    assert engine.stop("life") is True, "busybox should halt cleanly"
    assert time.monotonic() - started < 9, "clean stop hit the timeout"
    assert engine.state("life").status == "STOPPED"
    with pytest.raises(errors.InvalidState):
        engine.stop("life")

    engine.delete("life")
    assert engine.list() == []
    assert not (engine.config.containers_dir / "life").exists()
    with pytest.raises(errors.ContainerNotFound):
        engine.state("life")


def test_stop_timeout_then_kill(engine, image):
    engine.launch("stubborn", "busybox")
    # A zero timeout means: do not wait for init, kill at once.
    assert engine.stop("stubborn", timeout=0) is False
    assert engine.state("stubborn").status == "STOPPED"


def test_force_stop_of_frozen_container(engine, image):
    engine.launch("icy", "busybox")
    engine.freeze("icy")
    engine.stop("icy", force=True)
    assert engine.state("icy").status == "STOPPED"


def test_delete_running_needs_force(engine, image):
    engine.launch("busy", "busybox")
    with pytest.raises(errors.InvalidState):
        engine.delete("busy")
    assert engine.state("busy").status == "RUNNING"
    engine.delete("busy", force=True)
    assert engine.list() == []


def test_freeze_and_unfreeze_really_stop_processes(engine, image):
    engine.launch("cold", "busybox")
    pid = engine.state("cold").pid
    engine.freeze("cold")
    assert wait_for(lambda: engine.state("cold").status == "FROZEN")
    before = int(proc_status(pid)["voluntary_ctxt_switches"])
    time.sleep(0.3)
    assert int(proc_status(pid)["voluntary_ctxt_switches"]) == before
    engine.unfreeze("cold")
    assert engine.execute("cold", ["true"]).exit_code == 0


def test_state_counters_for_diagnostics(engine, image):
    engine.launch("counted", "busybox")
    before = engine.state("counted")
    assert "lo" in before.network
    # Block-io counters exist (this VM's kernel leaves them at 0).
    assert isinstance(before.disk_write_bytes, int)
    result = engine.execute("counted", [
        "sh", "-c", "ip link set lo up && "
                    "httpd -p 127.0.0.1:8080 -h /etc && "
                    "wget -q -O /dev/null http://127.0.0.1:8080/hostname"],
        timeout=20)
    assert result.exit_code == 0, result.stderr
    after = engine.state("counted")
    assert after.network["lo"]["tx_packets"] > (
        before.network["lo"]["tx_packets"])
    assert after.network["lo"]["rx_bytes"] > before.network["lo"]["rx_bytes"]
    assert after.cpu_time_ns > before.cpu_time_ns
