"""The ``[lxc]`` options and their mapping onto EngineConfig."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from oslo_config import cfg

from nova_lxd import conf as nova_lxd_conf
from nova_lxd.conf import opts
from nova_lxd.engine.config import EngineConfig

FIELDS = [f.name for f in dataclasses.fields(EngineConfig)]


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    nova_lxd_conf.register_opts(conf)
    return conf


def load(conf: cfg.ConfigOpts, tmp_path: Path, text: str) -> None:
    path = tmp_path / "nova-lxd.conf"
    path.write_text(text)
    conf(args=[], default_config_files=[str(path)])


def test_import_registers_nothing() -> None:
    assert "lxc" not in cfg.CONF


def test_one_option_per_field() -> None:
    groups = dict(opts.list_opts())
    assert list(groups) == ["lxc", "daemon"]
    group_opts = groups["lxc"]
    engine_names = [o.name for o in group_opts][:len(FIELDS)]
    assert engine_names == FIELDS
    # After the engine's, the driver's own options.
    assert [o.name for o in group_opts][len(FIELDS):] == [
        "allow_privileged_flavors", "allow_nesting_flavors",
        "allow_shared_idmap_flavors", "daemon_socket",
        "image_download_dir"]


def test_privileged_flavors_are_off_by_default(conf) -> None:
    conf(args=[], default_config_files=[])
    assert conf.lxc.allow_privileged_flavors is False


@pytest.mark.parametrize("field", FIELDS)
def test_defaults_equal_engine_config(conf, field) -> None:
    conf(args=[], default_config_files=[])
    assert (getattr(nova_lxd_conf.engine_config(conf), field)
            == getattr(EngineConfig(), field))


def test_overrides_from_file(conf, tmp_path) -> None:
    load(conf, tmp_path, """
[lxc]
root = /srv/nova-lxd
idmap_user = nova
idmap_size = 131072
subuid_file = /srv/subuid
subgid_file = /srv/subgid
idmapped_mounts = never
stop_timeout = 2.5
lock_timeout = 10
console_log_size = 65536
max_unpacked_size = 1073741824
max_image_members = 1000
lxc_start = /usr/local/bin/lxc-start
log_level = DEBUG
""")
    assert nova_lxd_conf.engine_config(conf) == EngineConfig(
        root=Path("/srv/nova-lxd"),
        idmap_user="nova",
        idmap_size=131072,
        subuid_file=Path("/srv/subuid"),
        subgid_file=Path("/srv/subgid"),
        idmapped_mounts="never",
        stop_timeout=2.5,
        lock_timeout=10.0,
        console_log_size=65536,
        max_unpacked_size=1024**3,
        max_image_members=1000,
        lxc_start="/usr/local/bin/lxc-start",
        log_level="DEBUG",
    )


@pytest.mark.parametrize("line", [
    "idmapped_mounts = sometimes",
    "log_level = LOUD",
    "idmap_size = 1000",
    "stop_timeout = -1",
])
def test_invalid_values_refused(conf, tmp_path, line) -> None:
    load(conf, tmp_path, f"[lxc]\n{line}\n")
    with pytest.raises(ValueError):
        nova_lxd_conf.engine_config(conf)
