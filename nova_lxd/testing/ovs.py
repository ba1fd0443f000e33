"""A private Open vSwitch for tests: ovsdb-server and ovs-vswitchd with the
userspace (netdev) datapath, so that it runs on kernels without the
openvswitch module. Everything lives under one directory; nothing touches
the host's own OVS, if it has one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
BINARIES = ("ovsdb-server", "ovsdb-tool", "ovs-vswitchd", "ovs-vsctl")


def missing() -> str | None:
    """Why this host cannot run the switch, or None."""
    absent = [b for b in BINARIES if not shutil.which(b)]
    if absent or not SCHEMA.exists():
        return (f"Open vSwitch is not installed ({', '.join(absent) or SCHEMA}"
                f" missing): apt install openvswitch-switch")
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing: the netdev datapath needs it"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OvsSwitch:
    """Start with :meth:`start`, stop with :meth:`stop`; ``connection`` is
    the ovsdb address for os-vif's ``[os_vif_ovs] ovsdb_connection``."""

    pids: list[int]

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="nlx-ovs-", dir="/tmp"))
        self.port = _free_port()
        self.connection = f"tcp:127.0.0.1:{self.port}"
        self.socket = self.directory / "db.sock"
        self.env = dict(os.environ, OVS_RUNDIR=str(self.directory),
                        OVS_DBDIR=str(self.directory),
                        OVS_LOGDIR=str(self.directory))

    def _run(self, *cmd: str) -> str:
        return subprocess.run(cmd, check=True, capture_output=True,
                              text=True, env=self.env, timeout=30).stdout

    def vsctl(self, *args: str) -> str:
        return self._run("ovs-vsctl", f"--db=unix:{self.socket}",
                         "--timeout=10", *args).strip()

    def start(self) -> OvsSwitch:
        d = self.directory
        self._run("ovsdb-tool", "create", str(d / "conf.db"), str(SCHEMA))
        self._run("ovsdb-server", str(d / "conf.db"),
                  f"--remote=punix:{self.socket}",
                  f"--remote=ptcp:{self.port}:127.0.0.1",
                  f"--pidfile={d / 'ovsdb-server.pid'}",
                  f"--unixctl={d / 'ovsdb-server.ctl'}",
                  f"--log-file={d / 'ovsdb-server.log'}", "--detach")
        self.vsctl("--no-wait", "init")
        self._run("ovs-vswitchd", f"unix:{self.socket}",
                  f"--pidfile={d / 'ovs-vswitchd.pid'}",
                  f"--unixctl={d / 'ovs-vswitchd.ctl'}",
                  f"--log-file={d / 'ovs-vswitchd.log'}", "--detach")
        self.pids = [int((d / f"{name}.pid").read_text())
                     for name in ("ovs-vswitchd", "ovsdb-server")]
        return self

    def stop(self) -> None:
        """Bridges first (the netdev datapath's tap devices outlive
        ovs-vswitchd otherwise), then the daemons."""
        try:
            for bridge in self.vsctl("list-br").split():
                self.vsctl("--if-exists", "del-br", bridge)
        except (subprocess.SubprocessError, OSError):
            pass
        for pid in getattr(self, "pids", ()):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(self.directory, ignore_errors=True)

    def interface_of(self, port: str) -> dict[str, str]:
        """external_ids of an interface, as a dict."""
        raw = self.vsctl("--format=json", "--columns=external_ids", "find",
                         "Interface", f"name={port}")
        data = json.loads(raw)["data"]
        if not data:
            return {}
        return dict(data[0][0][1])

    def ports(self, bridge: str) -> list[str]:
        out = self.vsctl("list-ports", bridge)
        return out.split() if out else []
