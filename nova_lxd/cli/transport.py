"""How bytes reach the daemon: its unix socket, or pinned HTTPS.

The unix socket adapter is ``nova_lxd.client.unix``'s. HTTPS remotes
are self-signed servers: instead of a CA, the server is verified by the
sha256 fingerprint pinned at ``remote add`` (urllib3's
``assert_fingerprint``), on every connection, and the client presents
its own certificate. Websockets (exec, console) get the same treatment
through :func:`open_socket`.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.util.timeout import Timeout

from nova_lxd.cli.errors import CertificateMismatch
from nova_lxd.client.unix import UNIX_BASE, UnixAdapter

__all__ = ["UNIX_BASE", "PinnedAdapter", "UnixAdapter", "open_socket"]


class PinnedAdapter(HTTPAdapter):
    """HTTPS to a server known by its certificate's sha256 fingerprint.

    No CA and no hostname check (the servers are self-signed and often
    reached by IP); the pinned fingerprint is the whole trust decision,
    checked by urllib3 right after the handshake and before a byte of
    the request is sent.
    """

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = normalize_fingerprint(fingerprint)
        super().__init__()

    def init_poolmanager(self, connections, maxsize, block=False,
                         **pool_kwargs):
        pool_kwargs.update(
            assert_fingerprint=self.fingerprint,
            assert_hostname=False,
            cert_reqs="CERT_NONE",
            ssl_minimum_version=ssl.TLSVersion.TLSv1_2,
        )
        super().init_poolmanager(connections, maxsize, block,
                                 **pool_kwargs)

    def send(self, request, **kwargs):
        # requests swaps a False ``verify`` for $REQUESTS_CA_BUNDLE when
        # the request itself does not say; CA checks would then refuse
        # every self-signed server. The pin is the check: say so here.
        kwargs["verify"] = False
        return super().send(request, **kwargs)


def normalize_fingerprint(text: str) -> str:
    """``AB:cd:..`` or ``abcd..`` -> lowercase hex without colons."""
    return text.replace(":", "").strip().lower()


def fingerprint_of(der: bytes) -> str:
    """sha256 of a certificate's DER encoding, as LXD prints it."""
    return hashlib.sha256(der).hexdigest()


def _tls_context(cert: tuple[str, str] | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    return ctx


def fetch_server_certificate(url: str, timeout: float = 10.0) -> bytes:
    """The DER certificate an HTTPS server presents (before it is
    trusted: this is what ``remote add`` shows and pins)."""
    host, port = host_port(url)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with _tls_context(None).wrap_socket(
                raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise CertificateMismatch(f"{url} presented no certificate")
    return der


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 8443


def open_socket(base_url: str, socket_path: str | None,
                fingerprint: str | None,
                cert: tuple[str, str] | None,
                timeout: float | None = 30.0) -> socket.socket:
    """A connected socket for a websocket: the unix socket, or TLS to
    the remote with the pinned fingerprint checked before use."""
    if socket_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except OSError:
            sock.close()
            raise
        return sock
    host, port = host_port(base_url)
    raw = socket.create_connection((host, port), timeout=timeout)
    tls = _tls_context(cert).wrap_socket(raw, server_hostname=host)
    der = tls.getpeercert(binary_form=True) or b""
    want = normalize_fingerprint(fingerprint or "")
    if not hmac.compare_digest(fingerprint_of(der), want):
        tls.close()
        raise CertificateMismatch(
            f"the certificate of {base_url} does not match the pinned "
            f"fingerprint")
    return tls


def default_timeout() -> Timeout:
    return Timeout(connect=10.0, read=None)
