"""Live moves between two engine roots: a running stateful container's
processes travel with its files (CRIU dump, stream, restore), and every
failure leaves the source running as it was."""

from __future__ import annotations

import io
import os

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine
from nova_lxd.engine.containers import criu
from nova_lxd.engine.transfer.stream import TransferCorrupt
from tests.functional.conftest import make_config
from tests.functional.engine.helpers import sh

pytestmark = pytest.mark.skipif(
    criu.problem() is not None,
    reason=f"CRIU does not work on this host: {criu.problem()}")


def running_sleeper(engine: Engine, name: str) -> str:
    engine.launch(name, "busybox", stateful=True)
    sh(engine, name, "echo moved > /data; "
                     "setsid sleep 1000 </dev/null >/dev/null 2>&1 &")
    return sh(engine, name, "pidof sleep").strip()


def test_live_move_keeps_the_processes(engine, image, target_root,
                                       busybox_tarball):
    pid = running_sleeper(engine, "mover")
    target = Engine(make_config(target_root))
    out = io.BytesIO()
    summary = engine.send("mover", out, live=True)
    assert summary.bytes > 0
    assert engine.status("mover") == "STOPPED"        # dumped, waiting
    record = target.receive("mover", io.BytesIO(out.getvalue()))
    assert record.stateful
    assert record.idmap == engine.get("mover").idmap  # CRIU's userns map
    assert target.status("mover") == "RUNNING"
    assert sh(target, "mover", "pidof sleep").strip() == pid
    assert sh(target, "mover", "cat /data") == "moved\n"
    engine.live_finish("mover", moved=True)
    assert engine.status("mover") == "STOPPED"
    assert not (engine.config.containers_dir / "mover" / "live-dump"
                ).exists()


def test_failed_receive_restores_the_source(engine, image, target_root):
    pid = running_sleeper(engine, "stay")
    out = io.BytesIO()
    engine.send("stay", out, live=True)
    broken = out.getvalue()[:-100]
    target = Engine(make_config(target_root))
    with pytest.raises(TransferCorrupt):
        target.receive("stay", io.BytesIO(broken))
    assert target.list() == []
    engine.live_finish("stay", moved=False)
    assert engine.status("stay") == "RUNNING"
    assert sh(engine, "stay", "pidof sleep").strip() == pid


def test_live_refused_before_anything_moves(engine, image):
    engine.launch("plain", "busybox")
    assert "not created stateful" in engine.live_problem("plain")
    with pytest.raises(errors.EngineError, match="not created stateful"):
        engine.send("plain", io.BytesIO(), live=True)
    assert engine.status("plain") == "RUNNING"
    engine.create("off", "busybox", stateful=True)
    assert "stopped" in engine.live_problem("off")


def test_taken_id_range_refuses_the_live_receive(engine, image,
                                                 target_root,
                                                 busybox_tarball):
    running_sleeper(engine, "clash")
    target = Engine(make_config(target_root))
    target.import_image(busybox_tarball, aliases=("busybox",))
    target.create("squatter", "busybox")      # takes the first range
    out = io.BytesIO()
    engine.send("clash", out, live=True)
    with pytest.raises(errors.HostError, match="must keep its id range"):
        target.receive("clash", io.BytesIO(out.getvalue()))
    assert [r.name for r in target.list()] == ["squatter"]
    engine.live_finish("clash", moved=False)
    assert engine.status("clash") == "RUNNING"


def test_stateful_containers_have_no_console(engine, image):
    engine.launch("quiet", "busybox", stateful=True)
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(errors.InvalidState, match="no console device"):
            engine.console_attach("quiet", stdin=read_end,
                                  stdout=write_end, stderr=write_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert engine.console_log("quiet") == ""
    assert engine.status("quiet") == "RUNNING"
