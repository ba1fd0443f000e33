"""The ``[daemon]`` options and how nlxd builds itself from them."""

from __future__ import annotations

from pathlib import Path

from oslo_config import cfg

from nova_lxd import conf
from nova_lxd.cmd import daemon as cmd
from nova_lxd.conf import daemon as daemon_conf
from nova_lxd.daemon import addresses


def _conf(tmp_path: Path, **daemon_opts) -> cfg.ConfigOpts:
    """From a file: overrides would stay on the shared option groups and
    leak into other tests."""
    path = tmp_path / "nlxd.conf"
    path.write_text("\n".join(
        ["[lxc]", f"root = {tmp_path / 'root'}", "[daemon]"]
        + [f"{k} = {v}" for k, v in daemon_opts.items()]) + "\n")
    config = cfg.ConfigOpts()
    conf.register_opts(config)
    daemon_conf.register_opts(config)
    config(args=[], default_config_files=[str(path)])
    return config


def test_defaults_live_under_the_engine_root(tmp_path, monkeypatch):
    monkeypatch.setattr(cmd, "Engine", lambda config: config)
    daemon = cmd.build(_conf(tmp_path))
    assert daemon.settings.state_dir == tmp_path / "root" / "daemon"
    assert daemon.socket_path == tmp_path / "root" / "daemon" / \
        "unix.socket"
    assert daemon.settings.https_address == ""
    assert daemon.settings.max_body_size == 1024 * 1024


def test_overrides(tmp_path, monkeypatch):
    monkeypatch.setattr(cmd, "Engine", lambda config: config)
    daemon = cmd.build(_conf(
        tmp_path, socket_path=str(tmp_path / "s.sock"), socket_group="adm",
        https_address="[::1]:8443", max_body_size=4096))
    assert daemon.socket_path == tmp_path / "s.sock"
    assert daemon.socket_group == "adm"
    assert daemon.settings.https_address == "[::1]:8443"
    assert daemon.settings.max_body_size == 4096


def test_split_address():
    assert addresses.split_address("[::1]:8443") == ("::1", 8443)
    assert addresses.split_address("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert addresses.split_address(":8443") == ("::", 8443)


def test_advertised_addresses(monkeypatch):
    monkeypatch.setattr(addresses, "host_addresses",
                        lambda ipv6: ["192.0.2.2"] + (["fd00::2"] if ipv6
                                                      else []))
    assert addresses.advertised("") == []
    assert addresses.advertised("10.0.0.1:8443") == ["10.0.0.1:8443"]
    assert addresses.advertised("0.0.0.0:8443") == ["192.0.2.2:8443"]
    assert addresses.advertised("[::]:8443") == ["192.0.2.2:8443",
                                                 "[fd00::2]:8443"]
