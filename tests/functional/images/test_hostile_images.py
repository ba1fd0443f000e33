"""Hostile images are refused with a typed error, and the host files they
aim at are neither written nor even opened (watched with inotify)."""

from __future__ import annotations

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine
from nova_lxd.testing import malicious
from nova_lxd.testing.canary import Canary

from ..conftest import make_config


def store_is_empty(engine: Engine) -> bool:
    leftovers = [p for p in engine.config.images_dir.iterdir()
                 if not p.name.startswith(".")
                 and p.name != "aliases.json"]
    scratch = engine.config.images_dir / ".tmp"
    return not leftovers and not any(scratch.iterdir())


def test_hostile_tarballs(engine, tmp_path):
    canary_dir = tmp_path / "host"
    canary_dir.mkdir()
    corpus = malicious.build_tar_corpus(tmp_path, canary_dir)
    for hostile in corpus:
        with pytest.raises(hostile.error) as exc:
            engine.import_image(hostile.path)
        assert str(exc.value), hostile.attack
        for target in hostile.targets:
            assert not target.exists(), f"{hostile.attack} wrote {target}"
        assert store_is_empty(engine), hostile.attack
    assert sorted(p.name for p in canary_dir.iterdir()) == []


@pytest.mark.parametrize("builder,limit", [
    (lambda d: malicious.build_bomb(d, 1 << 30), {"max_unpacked_size":
                                                  64 << 20}),
    (lambda d: malicious.build_inode_bomb(d, 5000), {"max_image_members":
                                                     1000}),
])
def test_bombs(engine_root, tmp_path, builder, limit):
    engine = Engine(make_config(engine_root, **limit))
    hostile = builder(tmp_path)
    with pytest.raises(hostile.error):
        engine.import_image(hostile.path)
    assert store_is_empty(engine)


def test_hostile_disks_never_touch_host_files(engine, tmp_path):
    canary_path = tmp_path / "secret"
    canary_path.write_bytes(b"")
    corpus = malicious.build_disk_corpus(tmp_path, canary_path)
    for hostile in corpus:
        with Canary(canary_path) as canary:
            with pytest.raises(hostile.error) as exc:
                engine.import_image(hostile.path)
            assert not canary.touched, (
                f"{hostile.attack}: the host file was opened "
                f"({canary.events})")
        assert canary.unchanged
        assert hostile.attack and str(exc.value)
        assert store_is_empty(engine), hostile.attack


def test_declared_format_must_match_content(engine, busybox_tarball):
    with pytest.raises(errors.InvalidImage) as exc:
        engine.import_image(busybox_tarball, disk_format="qcow2")
    assert "qcow2" in str(exc.value)
    assert store_is_empty(engine)
