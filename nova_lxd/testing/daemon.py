"""A real ``nlxd`` process on an engine root, for functional tests.

Shared by the daemon and CLI tests (one daemon each) and by the Nova
tests of several hosts, where every host has its own daemon on its own
engine root and address, and the daemons trust each other's server
certificates as two hosts of one cloud would.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import requests

from nova_lxd.cli.transport import UNIX_BASE, UnixAdapter
from nova_lxd.daemon.auth.tls import (
    CERT_FILE,
    KEY_FILE,
    fingerprint_der,
    fingerprint_pem,
)


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``address`` right now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class DaemonProcess:
    """``nlxd`` as a subprocess with its own configuration file.

    ``options`` go to ``[daemon]``, ``lxc_options`` to ``[lxc]`` (they
    must match those of any other engine user of the same root, e.g. a
    Nova driver's storage driver and id ranges).
    """

    def __init__(self, root: Path, address: str = "127.0.0.1",
                 lxc_options: dict[str, object] | None = None,
                 **options: object) -> None:
        self.root = root
        self.address = address
        self.socket = root / "daemon" / "unix.socket"
        self.port = free_port(address)
        self.config = root / "nlxd.conf"
        lxc = {"root": root, "stop_timeout": 10, "lock_timeout": 30,
               **(lxc_options or {})}
        lines = ["[lxc]", *(f"{k} = {v}" for k, v in lxc.items()),
                 "[daemon]", f"https_address = {address}:{self.port}",
                 "shutdown_timeout = 20"]
        lines += [f"{k} = {v}" for k, v in options.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.log = root / "nlxd.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"

    # The daemon makes its certificate on first start (default state_dir).
    @property
    def cert_path(self) -> Path:
        return self.root / "daemon" / CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.root / "daemon" / KEY_FILE

    @property
    def certificate_pem(self) -> str:
        return self.cert_path.read_text()

    @property
    def fingerprint(self) -> str:
        return fingerprint_pem(self.cert_path.read_bytes())

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
            socket.create_connection((self.address, self.port), 1).close()
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

    # -- clients ----------------------------------------------------------

    def unix_session(self) -> requests.Session:
        """Requests to ``UNIX_BASE + path`` go to the unix socket, where
        root is trusted with the whole API."""
        session = requests.Session()
        session.trust_env = False
        session.mount(UNIX_BASE, UnixAdapter(str(self.socket)))
        return session

    def https_json(self, method: str, path: str,
                   cert: tuple[Path, Path] | None = None,
                   body: object = None) -> tuple[int, dict]:
        """(status, decoded body) of a request over HTTPS with ``cert``
        (certificate, key) as client certificate, the server pinned by
        its fingerprint. Plain ``http.client``: nova's functional tests
        swap urllib3's HTTPS connections for wsgi-intercept's."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert is not None:
            ctx.load_cert_chain(cert[0], cert[1])
        conn = http.client.HTTPSConnection(self.address, self.port,
                                           timeout=30, context=ctx)
        try:
            conn.connect()
            der = conn.sock.getpeercert(binary_form=True)
            if fingerprint_der(der) != self.fingerprint:
                raise RuntimeError(f"{self.url} presented another "
                                   f"certificate")
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def trust(self, pem: str, name: str) -> None:
        """Add a client certificate to the trust store through the
        daemon's own API (the unix socket), as an operator would."""
        with self.unix_session() as session:
            response = session.post(
                UNIX_BASE + "/1.0/certificates", timeout=30,
                json={"type": "client", "name": name, "certificate": pem})
        if response.status_code != 201:
            raise RuntimeError(f"nlxd refused certificate {name}: "
                               f"{response.status_code} {response.text}")
