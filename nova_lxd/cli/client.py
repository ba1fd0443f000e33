"""A small LXD 1.0 REST client: envelopes, operations, errors.

Explicit methods over ``requests`` (no attribute-path magic): ``get``,
``call`` (which waits on async operations) and ``raw`` for file and
image bodies. Every failure leaves as a :class:`CliError` that names
what to check, so ``nlxc`` never shows a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests
import urllib3

from nova_lxd.cli import transport
from nova_lxd.cli.config import Config, Remote
from nova_lxd.cli.errors import (
    ApiError,
    CertificateMismatch,
    CliError,
    ConnectionFailed,
    api_error,
)

# (connect, read): reads may wait long for a server-side wait.
TIMEOUT = (10.0, 600.0)
WAIT_SLICE = 2


def q(name: str) -> str:
    """A name as one path segment."""
    return quote(name, safe="")


class Client:
    """One remote's API."""

    def __init__(self, remote: Remote, config: Config | None = None) -> None:
        self.remote = remote
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "nlxc"
        self.cert: tuple[str, str] | None = None
        if remote.is_unix:
            self.base = transport.UNIX_BASE
            self.session.mount(self.base + "/",
                               transport.UnixAdapter(remote.socket_path))
        else:
            self.base = remote.addr.rstrip("/")
            if not remote.fingerprint:
                raise CliError(f"remote {remote.name!r} has no pinned "
                               f"certificate; add it again")
            self.session.mount(self.base + "/",
                               transport.PinnedAdapter(remote.fingerprint))
            self.session.verify = False
            if config is not None and config.client_cert.exists():
                self.cert = (str(config.client_cert),
                             str(config.client_key))
                self.session.cert = self.cert

    @property
    def where(self) -> str:
        """The address in words, for error messages."""
        if self.remote.is_unix:
            return f"the unix socket {self.remote.socket_path}"
        return self.remote.addr

    # -- requests ------------------------------------------------------

    def raw(self, method: str, path: str, **kwargs) -> requests.Response:
        """Send a request; error envelopes become ApiError."""
        kwargs.setdefault("timeout", TIMEOUT)
        try:
            resp = self.session.request(method, self.base + path, **kwargs)
        except requests.exceptions.SSLError as err:
            if "fingerprint" in str(err).lower():
                raise CertificateMismatch(
                    f"the certificate of {self.remote.addr} does not match "
                    f"the one pinned for remote {self.remote.name!r}: "
                    f"refusing to talk to it (if the server's certificate "
                    f"was replaced on purpose, remove the remote and add "
                    f"it again)")
            raise ConnectionFailed(f"TLS with {self.where} failed: {err}")
        except requests.exceptions.ConnectionError as err:
            raise ConnectionFailed(self._connection_hint(err))
        except requests.exceptions.Timeout:
            raise ConnectionFailed(f"{self.where} did not answer in time")
        if resp.status_code >= 400:
            raise self._error(resp)
        return resp

    def _connection_hint(self, err: Exception) -> str:
        reason = _root_cause(err)
        if self.remote.is_unix:
            hint = ("is nlxd running? (set NLXC_SOCKET to use another "
                    "socket)")
            if "Permission denied" in reason:
                hint = ("run as root or as a member of the socket's "
                        "group")
            return f"cannot connect to {self.where}: {reason}; {hint}"
        return (f"cannot connect to {self.where}: {reason}; check the "
                f"address and that nlxd listens on HTTPS there")

    def _error(self, resp: requests.Response) -> ApiError:
        message = ""
        try:
            body = resp.json()
            if isinstance(body, dict):
                message = str(body.get("error") or "")
        except ValueError:
            pass
        if not message:
            message = f"{resp.status_code} {resp.reason}"
        return api_error(message, resp.status_code)

    def envelope(self, method: str, path: str, **kwargs) -> dict:
        resp = self.raw(method, path, **kwargs)
        try:
            body = resp.json()
        except ValueError:
            raise ApiError(f"{self.where} answered {method} {path} with "
                           f"something that is not JSON", resp.status_code)
        if not isinstance(body, dict) or "type" not in body:
            raise ApiError(f"{self.where} answered without an LXD "
                           f"envelope", resp.status_code)
        body["_location"] = resp.headers.get("Location")
        return body

    def get(self, path: str, **params) -> Any:
        """GET a sync resource's metadata."""
        return self.envelope("GET", path, params=params or None)["metadata"]

    def call(self, method: str, path: str, *,
             progress: Callable[[dict], None] | None = None,
             **kwargs) -> Any:
        """Send; when the answer is an operation, wait for it and
        return its metadata (raising on failure)."""
        body = self.envelope(method, path, **kwargs)
        if body.get("type") != "async":
            return body.get("metadata")
        return self.wait(operation_path(body), progress=progress)

    def start(self, method: str, path: str, **kwargs) -> dict:
        """Send and return the async envelope without waiting (exec and
        console need its websocket secrets first)."""
        body = self.envelope(method, path, **kwargs)
        if body.get("type") != "async":
            raise ApiError(f"{method} {path}: expected an operation")
        return body

    def wait(self, op_path: str, *, check: bool = True,
             progress: Callable[[dict], None] | None = None) -> dict:
        """Wait for an operation to end, in short server-side waits so a
        progress callback can tick; raise if it failed."""
        while True:
            try:
                op = self.get(op_path + "/wait", timeout=WAIT_SLICE)
            except ApiError as err:
                # A server whose wait timed out may say so with 504.
                if err.status != 504:
                    raise
                op = self.get(op_path)
            if progress is not None:
                progress(op)
            if op.get("status_code", 0) >= 200:
                break
            time.sleep(0.05)
        if check and op.get("status_code") != 200:
            raise ApiError(op.get("err") or op.get("status") or
                           "operation failed", 0)
        return op

    def websocket_socket(self):
        """A connected (and, for HTTPS, pinned) socket for a websocket."""
        try:
            return transport.open_socket(
                self.base,
                self.remote.socket_path if self.remote.is_unix else None,
                self.remote.fingerprint, self.cert)
        except CertificateMismatch:
            raise
        except OSError as err:
            raise ConnectionFailed(f"cannot connect to {self.where}: {err}")

    def close(self) -> None:
        self.session.close()


def operation_path(body: dict) -> str:
    """Where an async answer's operation lives (Location, else body)."""
    path = body.get("_location") or body.get("operation")
    if not path:
        op_id = (body.get("metadata") or {}).get("id")
        if not op_id:
            raise ApiError("async answer without an operation")
        path = f"/1.0/operations/{op_id}"
    return path


def _root_cause(err: BaseException) -> str:
    """The innermost reason of a requests/urllib3 connection error
    ("[Errno 2] No such file or directory" rather than three layers
    of wrappers)."""
    seen: BaseException = err
    for _ in range(10):
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in seen.args
                          if isinstance(a, BaseException)), None)
        if inner is None or inner is seen:
            break
        seen = inner
    if isinstance(seen, OSError) and seen.strerror:
        return seen.strerror
    text = str(seen)
    if isinstance(seen, urllib3.exceptions.NewConnectionError):
        text = text.split(": ", 1)[-1]
    return text
