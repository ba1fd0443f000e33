"""config.yml, the local socket's path and ``[REMOTE:]NAME`` addressing."""

from __future__ import annotations

import pytest

from nova_lxd.cli import address
from nova_lxd.cli.config import DEFAULT_SOCKET, Config, Remote
from nova_lxd.cli.errors import CliError


def test_defaults_to_the_daemons_socket(conf_dir):
    config = Config()
    assert config.dir == conf_dir
    assert config.default_remote == "local"
    assert config.remote().socket_path == DEFAULT_SOCKET
    assert config.remote().is_unix


def test_nlxc_socket_overrides(monkeypatch):
    monkeypatch.setenv("NLXC_SOCKET", "/run/x.sock")
    assert Config().remote("local").socket_path == "/run/x.sock"


def test_nlxc_socket_is_not_saved(monkeypatch, conf_dir):
    monkeypatch.setenv("NLXC_SOCKET", "/run/x.sock")
    config = Config()
    config.add_remote(Remote("prod", "https://h:8443", "ab"))
    config.save()
    assert "x.sock" not in (conf_dir / "config.yml").read_text()
    monkeypatch.delenv("NLXC_SOCKET")
    assert Config().remote("local").socket_path == DEFAULT_SOCKET


def test_xdg_config_home(monkeypatch, tmp_path):
    monkeypatch.delenv("NLXC_CONF_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert Config().dir == tmp_path / "xdg" / "nlxc"


def test_save_and_load_round_trip(conf_dir):
    config = Config()
    config.add_remote(Remote("prod", "https://h:8443", "ab" * 32))
    config.default_remote = "prod"
    config.save()
    assert (conf_dir.stat().st_mode & 0o777) == 0o700
    again = Config()
    assert again.default_remote == "prod"
    assert again.remote("prod").fingerprint == "ab" * 32
    assert not again.remote("prod").is_unix
    assert "local" in again.remotes


def test_socket_path_in_config_file(conf_dir):
    conf_dir.mkdir()
    (conf_dir / "config.yml").write_text(
        "remotes:\n  local: {addr: 'unix:///srv/n.sock'}\n")
    assert Config().remote("local").socket_path == "/srv/n.sock"
    config = Config()
    config.save()
    assert Config().remote("local").socket_path == "/srv/n.sock"


def test_broken_config_is_a_clear_error(conf_dir):
    conf_dir.mkdir()
    (conf_dir / "config.yml").write_text("remotes: [unclosed\n")
    with pytest.raises(CliError, match="cannot read"):
        Config()
    (conf_dir / "config.yml").write_text("remotes:\n  x: {}\n")
    with pytest.raises(CliError, match="no addr"):
        Config()


def test_remote_rules():
    config = Config()
    with pytest.raises(CliError, match="does not exist"):
        config.remote("nope")
    with pytest.raises(CliError, match="cannot be removed"):
        config.remove_remote("local")
    with pytest.raises(CliError, match="invalid remote name"):
        config.add_remote(Remote("a b", "https://x"))
    config.add_remote(Remote("a", "https://x"))
    with pytest.raises(CliError, match="already exists"):
        config.add_remote(Remote("a", "https://y"))
    config.default_remote = "a"
    config.remove_remote("a")
    assert config.default_remote == "local"


@pytest.fixture
def config():
    c = Config()
    c.add_remote(Remote("prod", "https://h:8443", "00"))
    return c


@pytest.mark.parametrize("text, remote, name", [
    ("c1", "local", "c1"),
    ("prod:c1", "prod", "c1"),
    ("local:c1", "local", "c1"),
    ("prod:", "prod", ""),
])
def test_parse(config, text, remote, name):
    assert address.parse(config, text) == address.Target(remote, name)


def test_parse_unknown_remote(config):
    with pytest.raises(CliError, match="remote 'x' does not exist"):
        address.parse(config, "x:c1")


def test_parse_name_requires_a_name(config):
    with pytest.raises(CliError, match="name is required"):
        address.parse_name(config, "prod:")
    with pytest.raises(CliError, match="not allowed"):
        address.parse_name(config, "c1/x")


@pytest.mark.parametrize("text, remote, name, path", [
    ("c1/etc/hosts", "local", "c1", "/etc/hosts"),
    ("prod:c1//tmp/x", "prod", "c1", "/tmp/x"),
    ("c1/tmp/", "local", "c1", "/tmp/"),
])
def test_parse_file(config, text, remote, name, path):
    target, got = address.parse_file(config, text)
    assert (target.remote, target.name, got) == (remote, name, path)


@pytest.mark.parametrize("text", ["c1", "c1/", "/etc/hosts", "prod:c1"])
def test_parse_file_needs_a_path(config, text):
    with pytest.raises(CliError, match="INSTANCE/PATH"):
        address.parse_file(config, text)


def test_split_snapshot():
    assert address.split_snapshot("c1/s0") == ("c1", "s0")
    assert address.split_snapshot("c1") == ("c1", None)
