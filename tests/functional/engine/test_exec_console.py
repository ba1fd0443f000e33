"""Commands inside a container and its console log."""

from __future__ import annotations

import time

import pytest

from nova_lxd.engine import errors


@pytest.fixture
def running(engine, image):
    engine.launch("runner", "busybox")
    return "runner"


def test_exit_codes_and_streams(engine, running):
    result = engine.execute(running, ["sh", "-c",
                                      "echo out; echo err >&2; exit 7"])
    assert result.exit_code == 7
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
    assert engine.execute(running, ["true"]).exit_code == 0
    assert engine.execute(running, ["false"]).exit_code == 1


def test_stdin_env_cwd_and_user(engine, running):
    assert engine.execute(running, ["cat"], stdin=b"hello").stdout == (
        b"hello")
    env = engine.execute(running, ["env"], env={"GREETING": "hi"}).stdout
    assert b"GREETING=hi" in env.splitlines()
    assert b"HOME=/root" in env.splitlines()
    assert engine.execute(running, ["pwd"], cwd="/tmp").stdout == b"/tmp\n"
    assert engine.execute(running, ["id", "-u"], uid=1000,
                          gid=1000).stdout == b"1000\n"


def test_missing_command(engine, running):
    result = engine.execute(running, ["/no/such/program"])
    assert result.exit_code != 0


def test_timeout_kills(engine, running):
    started = time.monotonic()
    with pytest.raises(errors.CommandTimeout):
        engine.execute(running, ["sleep", "30"], timeout=0.5)
    assert time.monotonic() - started < 5


def test_exec_needs_running_container(engine, image):
    engine.create("idle", "busybox")
    with pytest.raises(errors.InvalidState):
        engine.execute("idle", ["true"])
    with pytest.raises(errors.InvalidInput):
        engine.execute("idle", [])


def test_console_log_has_init_output(engine, running):
    deadline = time.monotonic() + 10
    while "booted runner" not in engine.console_log(running):
        assert time.monotonic() < deadline, engine.console_log(running)
        time.sleep(0.05)
    engine.stop(running)
    log = engine.console_log(running)
    assert "busybox: shutting down" in log
    # The log survives a restart (appended, rotated by size).
    engine.start(running)
    deadline = time.monotonic() + 10
    while engine.console_log(running).count("booted runner") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_console_log_rotates(engine_root, busybox_tarball):
    from nova_lxd.engine.api import Engine

    from ..conftest import make_config
    engine = Engine(make_config(engine_root, console_log_size=8192))
    engine.import_image(busybox_tarball, aliases=("busybox",))
    engine.launch("chatty", "busybox")
    engine.execute("chatty", ["sh", "-c",
                              "for i in $(seq 1 2000); do "
                              "echo line-$i-padding-padding > /dev/console;"
                              " done"])
    log_dir = engine.config.containers_dir / "chatty"
    deadline = time.monotonic() + 10
    while not (log_dir / "console.log.1").exists():
        assert time.monotonic() < deadline, "console log never rotated"
        time.sleep(0.05)
    # liblxc's monitor writes the log as it reads the console: wait for
    # the last line rather than assume it is there when exec returns.
    while "line-2000-padding" not in engine.console_log("chatty"):
        assert time.monotonic() < deadline, engine.console_log("chatty")[-200:]
        time.sleep(0.05)
    assert (log_dir / "console.log").stat().st_size <= 8192
