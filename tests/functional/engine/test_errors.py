"""Bad input gets a typed error and leaves nothing behind."""

from __future__ import annotations

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine

from ..conftest import make_config


def leftovers(engine):
    containers = sorted(p.name for p in
                        engine.config.containers_dir.iterdir())
    locks = sorted(p.name for p in engine.config.locks_dir.iterdir()
                   if p.name.startswith("container-"))
    # No lock file outlives a failed create.
    assert set(locks) <= {f"container-{name}.lock" for name in containers}
    return containers


def test_unknown_image(engine, image):
    with pytest.raises(errors.ImageNotFound) as exc:
        engine.create("c1", "no-such-image")
    assert "no-such-image" in str(exc.value)
    assert leftovers(engine) == []


@pytest.mark.parametrize("name", ["", "1abc", "-abc", "abc-", "a_b",
                                  "a.b", "../x", "x" * 64, "with space"])
def test_invalid_names(engine, image, name):
    with pytest.raises(errors.InvalidName):
        engine.create(name, "busybox")
    assert leftovers(engine) == []


def test_duplicate_name(engine, image):
    engine.create("twin", "busybox")
    with pytest.raises(errors.ContainerExists):
        engine.create("twin", "busybox")
    assert leftovers(engine) == ["twin"]


@pytest.mark.parametrize("limits", [
    {"limits.cpu": "9999"},
    {"limits.memory": "1KiB"},
    {"limits.memory": "lots"},
    {"limits.processes": 0},
    {"limits.bogus": "1"},
])
def test_impossible_limits(engine, image, limits):
    with pytest.raises(errors.InvalidLimits):
        engine.create("limited", "busybox", limits=limits)
    assert leftovers(engine) == []


def test_missing_subordinate_ids(engine_root, busybox_tarball, tmp_path):
    empty = tmp_path / "subuid"
    empty.write_text("someoneelse:100000:65536\n")
    engine = Engine(make_config(engine_root, subuid_file=empty,
                                subgid_file=empty))
    engine.import_image(busybox_tarball, aliases=("busybox",))
    with pytest.raises(errors.SubordinateIdsMissing) as exc:
        engine.create("c1", "busybox")
    assert str(empty) in str(exc.value)
    assert leftovers(engine) == []


def test_start_failure_reports_liblxc_lines(engine, tmp_path):
    """An image without an init cannot start: the error quotes liblxc."""
    import tarfile
    broken = tmp_path / "noinit.tar"
    etc = tmp_path / "etc"
    etc.mkdir()
    with tarfile.open(broken, "w") as tar:
        tar.add(etc, arcname="./etc")
    engine.import_image(broken, aliases=("noinit",))
    engine.create("broken", "noinit")
    with pytest.raises(errors.StartFailed) as exc:
        engine.start("broken")
    assert exc.value.log_lines, "no liblxc log lines in the error"
    assert any("init" in line for line in exc.value.log_lines)
    assert engine.state("broken").status == "STOPPED"
    with pytest.raises(errors.StartFailed):
        engine.launch("broken2", "noinit")
    assert leftovers(engine) == ["broken"]


def test_unknown_container(engine):
    for call in (engine.start, engine.freeze, engine.state,
                 engine.console_log, engine.delete):
        with pytest.raises(errors.ContainerNotFound):
            call("ghost")


def test_missing_container_leaves_no_lock_file(engine):
    for call in (lambda: engine.delete("ghost", force=True),
                 lambda: engine.start("ghost"),
                 lambda: engine.freeze("ghost")):
        with pytest.raises(errors.ContainerNotFound):
            call()
    assert not list(engine.config.locks_dir.glob("container-ghost*"))
