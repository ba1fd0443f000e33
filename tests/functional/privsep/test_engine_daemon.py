"""The engine behind the real privsep daemon: a separate root process
(started with privsep-helper) does the work, the caller holds no Engine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from oslo_config import cfg

from nova_lxd import conf as lxd_conf
from nova_lxd.privsep import engine as priv_engine
from nova_lxd.privsep import engine_context


@pytest.fixture
def daemon(engine_root, tmp_path):
    conf_file = tmp_path / "nova-lxd.conf"
    conf_file.write_text(f"[lxc]\nroot = {engine_root}\nstop_timeout = 5\n")
    conf = cfg.CONF
    if "lxc" not in conf:
        lxd_conf.register_opts(conf)
    conf([], project="nova-lxd-tests", default_config_files=[])
    helper = Path(sys.executable).with_name("privsep-helper")
    conf.set_override("helper_command",
                      f"{helper} --config-file {conf_file}",
                      group="nova_lxd_privileged")
    engine_context.set_client_mode(True)
    yield engine_root
    engine_context.stop()
    conf.reset()
    conf.clear_override("helper_command", group="nova_lxd_privileged")


def ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
        chain.append(pid)
    return chain


def test_containers_are_run_by_the_daemon(daemon, busybox_tarball):
    image = priv_engine.import_image(str(busybox_tarball), ["busybox"],
                                     "raw", "bare", None)
    assert len(image["fingerprint"]) == 64
    state = priv_engine.create("viaprivsep", "busybox",
                               {"limits": {"limits.memory": "128MiB"}},
                               True)
    assert state["status"] == "RUNNING"
    # The container's processes descend from neither this process nor
    # the daemon: lxc-start daemonised its small monitor.
    assert os.getpid() not in ancestors(state["pid"])
    assert list(priv_engine.names()) == ["viaprivsep"]
    priv_engine.power("viaprivsep", "freeze", None, False)
    assert priv_engine.state("viaprivsep")["status"] == "FROZEN"
    priv_engine.power("viaprivsep", "stop", None, True)
    assert priv_engine.state("viaprivsep")["status"] == "STOPPED"
    priv_engine.delete("viaprivsep", True)
    assert list(priv_engine.names()) == []


def test_engine_errors_cross_the_boundary(daemon):
    from nova_lxd.engine import errors
    with pytest.raises(errors.ContainerNotFound):
        priv_engine.state("ghost")
