"""A real ``nlxd`` process on a fresh engine root, with HTTPS on a free
local port, and pylxd clients for it (``DaemonProcess`` lives in
``nova_lxd.testing.daemon``; re-exported for the tests that import it
from here)."""

from __future__ import annotations

import os

import pytest

from nova_lxd.testing.daemon import DaemonProcess, free_port
from tests.functional.conftest import cleanup_root, make_engine_root

__all__ = ["DaemonProcess", "free_port"]


@pytest.fixture
def daemon_root():
    root = make_engine_root("daemon-")
    yield root
    cleanup_root(root)


@pytest.fixture
def daemon(daemon_root):
    proc = DaemonProcess(daemon_root).start()
    yield proc
    if proc.proc is not None:
        proc.stop()


@pytest.fixture
def client(daemon):
    import pylxd
    os.environ.setdefault("PYLXD_WARNINGS", "none")
    return pylxd.Client(endpoint=str(daemon.socket))
