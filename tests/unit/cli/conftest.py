"""Fixtures of the client's unit tests: a private configuration
directory per test and a fake LXD server on a unix socket."""

from __future__ import annotations

import pytest

from tests.unit.cli.fakeserver import FakeServer


@pytest.fixture(autouse=True)
def conf_dir(tmp_path, monkeypatch):
    """Never read or write the real ~/.config/nlxc."""
    path = tmp_path / "nlxc"
    monkeypatch.setenv("NLXC_CONF_DIR", str(path))
    monkeypatch.delenv("NLXC_SOCKET", raising=False)
    return path


@pytest.fixture
def fake(tmp_path, monkeypatch):
    server = FakeServer.unix(tmp_path)
    monkeypatch.setenv("NLXC_SOCKET", server.socket_path)
    yield server
    server.close()
