"""Fixtures for functional tests: real liblxc containers, as root.

Engine roots live under /var/tmp (not pytest's 0700 tmp dirs): an
unprivileged container's root must be able to walk down to its rootfs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.testing.busybox import build_busybox_tarball

TEST_BASE = Path("/var/tmp/nova-lxd-tests")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="functional tests run real "
                                       "containers and need root")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def busybox_tarball(tmp_path_factory) -> Path:
    return build_busybox_tarball(
        tmp_path_factory.mktemp("images") / "busybox.tar.gz")


def make_engine_root(prefix: str = "engine-") -> Path:
    """A fresh engine root that unprivileged containers can traverse."""
    TEST_BASE.mkdir(parents=True, exist_ok=True)
    os.chmod(TEST_BASE, 0o711)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=TEST_BASE))
    os.chmod(root, 0o711)
    return root


@pytest.fixture
def engine_root() -> Path:
    root = make_engine_root()
    yield root
    cleanup_root(root)


@pytest.fixture
def target_root() -> Path:
    """A second engine root: another host's, for moves between hosts."""
    root = make_engine_root(prefix="target-")
    yield root
    cleanup_root(root)


def cleanup_root(root: Path) -> None:
    """Kill and remove whatever a test left, even after a failure
    (containers, then pools mounted under the root, then files)."""
    try:
        engine = Engine(EngineConfig(root=root), recover=True)
        for record in engine.list():
            engine.delete(record.name, force=True)
    finally:
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def unmount_under(root: Path) -> None:
    """Lazily unmount every mount at or below ``root``, deepest first
    (loop devices mounted with -o loop are detached with them)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    prefix = str(root).rstrip("/") + "/"
    for point in sorted((p for p in points if p.startswith(prefix)),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False,
                       capture_output=True)


def make_config(root: Path, **overrides) -> EngineConfig:
    overrides.setdefault("stop_timeout", 10.0)
    overrides.setdefault("lock_timeout", 30.0)
    return EngineConfig(root=root, **overrides)


@pytest.fixture
def engine(engine_root) -> Engine:
    return Engine(make_config(engine_root))


@pytest.fixture
def image(engine, busybox_tarball):
    return engine.import_image(busybox_tarball, aliases=("busybox",))
