"""A real ``nlxd`` process on a fresh engine root, with HTTPS on a free
local port, and pylxd clients for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.functional.conftest import cleanup_root, make_engine_root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonProcess:
    def __init__(self, root: Path, **options: object) -> None:
        self.root = root
        self.socket = root / "daemon" / "unix.socket"
        self.port = free_port()
        self.config = root / "nlxd.conf"
        lines = ["[lxc]", f"root = {root}", "stop_timeout = 10",
                 "lock_timeout = 30", "[daemon]",
                 f"https_address = 127.0.0.1:{self.port}",
                 "shutdown_timeout = 20"]
        lines += [f"{k} = {v}" for k, v in options.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.log = root / "nlxd.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> DaemonProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nova_lxd.cmd.daemon",
                 "--config-file", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nlxd exited: {self.log.read_text()}")
            if self.socket.exists() and self._https_up():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"nlxd did not start: {self.log.read_text()}")

    def _https_up(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"nlxd did not stop on signal {sig}: "
                               f"{self.log.read_text()[-3000:]}") from None
        finally:
            self.proc = None
        return code


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
