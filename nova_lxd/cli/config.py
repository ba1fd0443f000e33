"""The client's configuration: remotes, the default remote, key files.

Layout of the configuration directory (``~/.config/nlxc``, or
``$NLXC_CONF_DIR``), like ``lxc``'s::

    config.yml          default-remote and the remotes
    client.crt          this client's certificate (ECDSA P-384)
    client.key          its private key, mode 0600
    servercerts/NAME.crt  the pinned certificate of each HTTPS remote

The ``local`` remote is always there: the daemon's unix socket, at
``$NLXC_SOCKET`` if set, else at the path written in config.yml, else at
the daemon's default path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from nova_lxd.cli.errors import CliError

# The daemon's default socket: ``unix.socket`` in its state directory
# (``[daemon] state_dir``, default ``daemon`` under ``[lxc] root``).
DEFAULT_SOCKET = "/var/lib/nova-lxd/daemon/unix.socket"
LOCAL = "local"
REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Remote:
    """One server: ``unix:///path`` or ``https://host:port``."""

    name: str
    addr: str
    fingerprint: str | None = None

    @property
    def is_unix(self) -> bool:
        return self.addr.startswith("unix:")

    @property
    def socket_path(self) -> str:
        """The socket path of a ``unix://`` address."""
        path = self.addr[len("unix:"):]
        while path.startswith("//"):
            path = path[1:]
        return path or DEFAULT_SOCKET


def conf_dir() -> Path:
    """Where the configuration lives (``$NLXC_CONF_DIR`` wins)."""
    env = os.environ.get("NLXC_CONF_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nlxc"


class Config:
    """config.yml plus the key and certificate files beside it."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = Path(directory) if directory else conf_dir()
        self.default_remote = LOCAL
        self.remotes: dict[str, Remote] = {}
        # The local remote as config.yml has it (None: not written
        # there), so that $NLXC_SOCKET is never saved into the file.
        self._file_local: Remote | None = None
        self._load()

    @property
    def path(self) -> Path:
        return self.dir / "config.yml"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.dir / "client.key"

    def server_cert(self, name: str) -> Path:
        return self.dir / "servercerts" / f"{name}.crt"

    def _load(self) -> None:
        data: dict = {}
        if self.path.exists():
            try:
                data = yaml.safe_load(self.path.read_text()) or {}
            except (OSError, yaml.YAMLError) as err:
                raise CliError(f"cannot read {self.path}: {err}")
            if not isinstance(data, dict):
                raise CliError(f"{self.path}: expected a mapping")
        for name, entry in (data.get("remotes") or {}).items():
            if not isinstance(entry, dict) or "addr" not in entry:
                raise CliError(f"{self.path}: remote {name!r} has no addr")
            self.remotes[str(name)] = Remote(
                str(name), str(entry["addr"]), entry.get("fingerprint"))
        self.default_remote = str(data.get("default-remote") or LOCAL)
        self._file_local = self.remotes.get(LOCAL)
        env = os.environ.get("NLXC_SOCKET")
        if env:
            self.remotes[LOCAL] = Remote(LOCAL, "unix://" + env)
        elif self._file_local is None:
            self.remotes[LOCAL] = Remote(LOCAL, "unix://" + DEFAULT_SOCKET)

    def remote(self, name: str | None = None) -> Remote:
        """The remote called ``name`` (the default one when None)."""
        name = name or self.default_remote
        try:
            return self.remotes[name]
        except KeyError:
            raise CliError(f"remote {name!r} does not exist "
                           f"(see 'nlxc remote list')")

    def add_remote(self, remote: Remote) -> None:
        if not REMOTE_NAME.match(remote.name):
            raise CliError(f"invalid remote name {remote.name!r}")
        if remote.name in self.remotes:
            raise CliError(f"remote {remote.name!r} already exists")
        self.remotes[remote.name] = remote

    def remove_remote(self, name: str) -> None:
        if name == LOCAL:
            raise CliError("the local remote cannot be removed")
        self.remote(name)
        del self.remotes[name]
        if self.default_remote == name:
            self.default_remote = LOCAL
        self.server_cert(name).unlink(missing_ok=True)

    def save(self) -> None:
        """Write config.yml atomically; the directory is private (0700)
        because it holds the client's private key."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        remotes = {}
        for r in self.remotes.values():
            if r.name == LOCAL:
                r = self._file_local
                if r is None:
                    continue
            entry = {"addr": r.addr}
            if r.fingerprint:
                entry["fingerprint"] = r.fingerprint
            remotes[r.name] = entry
        data = {"default-remote": self.default_remote, "remotes": remotes}
        tmp = self.path.with_suffix(".yml.tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=True))
        os.replace(tmp, self.path)
