"""``nlxc`` as a subprocess against a real ``nlxd``: the daemon comes
from ``nova_lxd.testing.daemon.DaemonProcess``, on a fresh
engine root shared by the tests of one module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nova_lxd.testing.daemon import DaemonProcess
from tests.functional.conftest import cleanup_root, make_engine_root


@pytest.fixture(scope="module")
def daemon():
    root = make_engine_root("cli-")
    proc = DaemonProcess(root)
    try:
        proc.start()
        yield proc
    finally:
        if proc.proc is not None:
            proc.stop()
        cleanup_root(root)


class Nlxc:
    """Runs ``nlxc`` with its own configuration directory; every run is
    checked never to print a traceback."""

    def __init__(self, daemon, conf_dir: Path) -> None:
        self.env = {**os.environ, "NLXC_SOCKET": str(daemon.socket),
                    "NLXC_CONF_DIR": str(conf_dir)}
        self.env.pop("NLXC_DEBUG", None)

    def __call__(self, *argv: str, input: bytes | None = None,
                 check: bool = True, timeout: float = 120
                 ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "nova_lxd.cli.main", *argv],
            env=self.env, input=input, capture_output=True,
            stdin=None if input is not None else subprocess.DEVNULL,
            timeout=timeout)
        stderr = result.stderr.decode(errors="replace")
        assert "Traceback" not in stderr, stderr
        if check:
            assert result.returncode == 0, (argv, stderr)
        return result

    def out(self, *argv: str) -> str:
        return self(*argv).stdout.decode()

    def fails(self, *argv: str) -> str:
        """Run a command that must fail: exit 1, one line on stderr."""
        result = self(*argv, check=False)
        stderr = result.stderr.decode()
        assert result.returncode == 1, (argv, result)
        assert stderr.startswith("Error: "), stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        return stderr


@pytest.fixture
def nlxc(daemon, tmp_path) -> Nlxc:
    return Nlxc(daemon, tmp_path / "nlxc")


@pytest.fixture(scope="module")
def busybox_image(daemon, busybox_tarball, tmp_path_factory):
    """The busybox image imported with the CLI, alias ``busybox``."""
    run = Nlxc(daemon, tmp_path_factory.mktemp("nlxc"))
    run("image", "import", str(busybox_tarball), "--alias", "busybox")
    return "busybox"
