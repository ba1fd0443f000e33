"""The client's own identity: an ECDSA P-384 key and a self-signed
certificate, made once with ``cryptography`` and kept beside config.yml.

The key is written 0600 from the start (never world-readable, even for
an instant): whoever holds it is trusted by every server that trusts
this client.
"""

from __future__ import annotations

import base64
import datetime
import getpass
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=3650)


def ensure_client_certificate(cert_path: Path, key_path: Path) -> None:
    """Create the key and certificate unless both exist."""
    if cert_path.exists() and key_path.exists():
        return
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP384R1())
    cert = _self_signed(key)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    _write_private(key_path, key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nova-lxd"),
        x509.NameAttribute(NameOID.COMMON_NAME,
                           f"{getpass.getuser()}@{socket.gethostname()}"),
    ])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.ExtendedKeyUsage(
            [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA384())
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def pem_body(cert_path: Path) -> str:
    """The certificate as LXD's ``POST /1.0/certificates`` wants it:
    base64 DER without the PEM armour (what pylxd sends)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode()


def der_to_pem(der: bytes) -> bytes:
    cert = x509.load_der_x509_certificate(der)
    return cert.public_bytes(serialization.Encoding.PEM)


def describe(der: bytes) -> str:
    """Subject and validity of a certificate, for the user to judge."""
    cert = x509.load_der_x509_certificate(der)
    return (f"{cert.subject.rfc4514_string()}, valid until "
            f"{cert.not_valid_after_utc:%Y-%m-%d}")
