"""This host's daemon, over its unix socket, for services on the host.

The Nova driver moves instances between hosts through the daemons
(they hold the TLS identities the hosts trust each other by): it asks
its own daemon, over the socket, to offer an instance for migration or
to receive one. This is the small synchronous client it uses: LXD
envelopes in, operations waited on, every failure one ``DaemonError``
with the daemon's own message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from nova_lxd.client.unix import UNIX_BASE, UnixAdapter

TIMEOUT = (10.0, 600.0)


class DaemonError(Exception):
    """The daemon refused, failed, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LocalDaemon:
    def __init__(self, socket_path: Path | str) -> None:
        self.socket_path = str(socket_path)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.mount(UNIX_BASE + "/", UnixAdapter(self.socket_path))

    def request(self, method: str, path: str,
                body: dict[str, Any] | None = None,
                timeout: tuple[float, float] = TIMEOUT) -> dict[str, Any]:
        """The envelope of a request (an error envelope raises)."""
        try:
            response = self.session.request(method, UNIX_BASE + path,
                                            json=body, timeout=timeout)
        except requests.exceptions.ConnectionError as exc:
            raise DaemonError(f"nlxd is not reachable at {self.socket_path}"
                              f" ({exc.__class__.__name__}): is it running,"
                              f" and may this user open its socket?"
                              ) from None
        except requests.exceptions.Timeout:
            raise DaemonError(f"nlxd at {self.socket_path} did not answer "
                              f"in time") from None
        try:
            envelope = response.json()
        except ValueError:
            raise DaemonError(f"nlxd answered {response.status_code} with "
                              f"no JSON", response.status_code) from None
        if response.status_code >= 400 or envelope.get("type") == "error":
            raise DaemonError(str(envelope.get("error") or
                                  response.reason), response.status_code)
        return envelope

    def get(self, path: str) -> Any:
        return self.request("GET", path)["metadata"]

    def start(self, method: str, path: str,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        """An operation the request started."""
        envelope = self.request(method, path, body)
        if envelope.get("type") != "async":
            raise DaemonError(f"{method} {path} did not start an operation")
        return envelope["metadata"]

    def wait(self, operation: dict[str, Any],
             timeout: float = 3600) -> dict[str, Any]:
        """The operation once finished; a failed one raises."""
        op_id = quote(operation["id"], safe="")
        op = self.request("GET", f"/1.0/operations/{op_id}/wait?timeout="
                                 f"{timeout:.0f}",
                          timeout=(10.0, timeout + 30))["metadata"]
        if op.get("status_code") != 200:
            raise DaemonError(op.get("err") or f"operation {op_id} "
                              f"ended {op.get('status')}")
        return op

    def close(self) -> None:
        self.session.close()
