"""The server's certificate and the TLS context of the HTTPS listener.

LXD asks for a client certificate without requiring one and accepts any
certificate in the handshake: trust is decided per request by the
certificate's sha256 fingerprint (``trust.py``), so that an untrusted
client can still reach ``GET /1.0`` and add itself with a token. Python's
``ssl`` has no "request but do not verify" mode, so the verify callback
of the OpenSSL context is set through ctypes (checked at start-up: if
the layout is not what we expect, HTTPS refuses to start).
"""

from __future__ import annotations

import _ssl
import ctypes
import datetime
import hashlib
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nova_lxd.engine import fsutil

CERT_FILE = "server.crt"
KEY_FILE = "server.key"
VALID_DAYS = 3650
_SSL_VERIFY_PEER = 1

_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
# Kept alive for the process: OpenSSL holds the pointer.
_ACCEPT_ANY = _VERIFY_CB(lambda ok, store: 1)


def fingerprint_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def fingerprint_pem(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return fingerprint_der(cert.public_bytes(serialization.Encoding.DER))


def make_certificate(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-384 certificate and its key, in PEM."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nova-lxd"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(common_name), x509.DNSName("localhost")]),
                critical=False)
            .sign(key, hashes.SHA384()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_server_certificate(state_dir: Path) -> tuple[Path, Path]:
    """The daemon's certificate and key, made on first start (key 0600,
    never readable by anyone but root)."""
    fsutil.make_dirs(state_dir, mode=0o711)
    cert_path, key_path = state_dir / CERT_FILE, state_dir / KEY_FILE
    if not (cert_path.exists() and key_path.exists()):
        cert_pem, key_pem = make_certificate(socket.gethostname())
        fsutil.write_atomic(key_path, key_pem, mode=0o600)
        fsutil.write_atomic(cert_path, cert_pem, mode=0o644)
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # A client's identity is its handshake's certificate, never swapped
    # by a renegotiation on the same connection.
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(cert_path, key_path)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    _accept_any_client_certificate(ctx)
    return ctx


def _accept_any_client_certificate(ctx: ssl.SSLContext) -> None:
    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                       _VERIFY_CB]
    # The SSL_CTX pointer follows the object header in _ssl._SSLContext.
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__
                                       ).value
    if not ptr or lib.SSL_CTX_get_verify_mode(ptr) != _SSL_VERIFY_PEER:
        raise RuntimeError("Cannot set the TLS verify callback on this "
                           "Python: HTTPS is not available")
    lib.SSL_CTX_set_verify(ptr, _SSL_VERIFY_PEER, _ACCEPT_ANY)


def peer_fingerprint(ssl_object: ssl.SSLObject | None) -> str | None:
    """sha256 of the client's certificate, if it sent one."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return fingerprint_der(der) if der else None
