"""Requests over the daemon's unix socket.

``requests`` speaks TCP only, so the unix socket gets a small urllib3
connection class; every request whose URL starts with ``UNIX_BASE`` goes
to the socket the adapter was made for. Used by ``nlxc``, by the Nova
driver (which reaches its host's daemon for moves) and by the tests.
"""

from __future__ import annotations

import socket

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

UNIX_BASE = "http://nlxd"


class _UnixConnection(HTTPConnection):
    """An HTTP connection whose socket is an AF_UNIX stream."""

    def __init__(self, socket_path: str, **kwargs) -> None:
        super().__init__("localhost", **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        timeout = self.timeout
        if isinstance(timeout, int | float):
            sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        return sock


class _UnixPool(HTTPConnectionPool):
    def __init__(self, socket_path: str) -> None:
        super().__init__("localhost")
        self.socket_path = socket_path

    def _new_conn(self) -> _UnixConnection:
        timeout = self.timeout.connect_timeout
        if not isinstance(timeout, int | float):
            timeout = None
        return _UnixConnection(self.socket_path, timeout=timeout)


class UnixAdapter(HTTPAdapter):
    """Sends every request of its prefix to one unix socket."""

    def __init__(self, socket_path: str) -> None:
        super().__init__()
        self.socket_path = socket_path
        self._pool = _UnixPool(socket_path)

    def get_connection_with_tls_context(self, request, verify,
                                        proxies=None, cert=None):
        return self._pool

    def get_connection(self, url, proxies=None):
        return self._pool

    def close(self) -> None:
        self._pool.close()
        super().close()
