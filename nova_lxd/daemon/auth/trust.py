"""The trust store (client certificates by sha256 fingerprint) and the
single-use, expiring trust tokens that let a client add itself.

Both live in JSON files of the daemon's state directory (0600), written
atomically, so that a revocation or a used token survives a restart;
every request reads the in-memory copy, so a revocation takes effect on
the next request of that client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nova_lxd.daemon import errors
from nova_lxd.daemon.auth.tls import fingerprint_der
from nova_lxd.engine import fsutil

TRUST_FILE = "trust.json"
TOKENS_FILE = "tokens.json"


def parse_certificate(text: str) -> tuple[str, str]:
    """(PEM, fingerprint) of a certificate given as PEM or as the bare
    base64 DER LXD clients send."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            cert = x509.load_pem_x509_certificate(text.encode())
        else:
            cert = x509.load_der_x509_certificate(
                base64.b64decode("".join(text.split()), validate=True))
    except ValueError as exc:
        raise errors.BadRequest("Invalid certificate") from exc
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return pem, fingerprint_der(der)


class TrustStore:
    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._lock = threading.Lock()
        self._certs: dict[str, dict[str, Any]] = self._load(TRUST_FILE)
        self._tokens: dict[str, dict[str, Any]] = self._load(TOKENS_FILE)

    def _load(self, name: str) -> dict[str, Any]:
        path = self._dir / name
        if not path.exists():
            return {}
        return dict(fsutil.read_json(path))

    def _save(self) -> None:
        fsutil.write_json(self._dir / TRUST_FILE, self._certs, mode=0o600)
        fsutil.write_json(self._dir / TOKENS_FILE, self._tokens,
                          mode=0o600)

    # -- certificates ------------------------------------------------------

    def trusted(self, fingerprint: str | None) -> bool:
        return fingerprint is not None and fingerprint in self._certs

    def add(self, pem: str, fingerprint: str, name: str) -> dict[str, Any]:
        with self._lock:
            if fingerprint in self._certs:
                raise errors.Conflict("Certificate already in trust store")
            entry = {"name": name, "type": "client", "certificate": pem,
                     "fingerprint": fingerprint, "restricted": False,
                     "projects": [], "description": ""}
            self._certs[fingerprint] = entry
            self._save()
            return entry

    def get(self, ref: str) -> dict[str, Any]:
        matches = [fp for fp in self._certs if fp.startswith(ref)] \
            if len(ref) >= 8 else [fp for fp in self._certs if fp == ref]
        if len(matches) != 1:
            raise errors.NotFound("Certificate not found")
        return self._certs[matches[0]]

    def remove(self, ref: str) -> None:
        with self._lock:
            fingerprint = self.get(ref)["fingerprint"]
            del self._certs[fingerprint]
            self._save()

    def all(self) -> list[dict[str, Any]]:
        return list(self._certs.values())

    # -- tokens ------------------------------------------------------------

    def new_token(self, name: str, ttl: float, server_fingerprint: str,
                  addresses: list[str]) -> dict[str, Any]:
        """A trust token; only the hash of its secret is stored."""
        secret = secrets.token_hex(32)
        expires = time.time() + ttl
        with self._lock:
            self._expire()
            self._tokens[_hash(secret)] = {"name": name,
                                           "expires_at": expires}
            self._save()
        token = {"client_name": name, "fingerprint": server_fingerprint,
                 "addresses": addresses, "secret": secret,
                 "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                             time.gmtime(expires))}
        return {**token, "token": base64.b64encode(
            json.dumps(token, separators=(",", ":")).encode()).decode()}

    def use_token(self, token: str) -> str:
        """Spend a token (its base64 form or its bare secret); the
        client name it was made for. Refused when unknown, used or
        expired."""
        secret = _secret_of(token)
        with self._lock:
            self._expire()
            entry = None
            for key in list(self._tokens):
                if hmac.compare_digest(key, _hash(secret)):
                    entry = self._tokens.pop(key)
            if entry is None:
                raise errors.Forbidden("Invalid, used or expired trust "
                                       "token")
            self._save()
            return str(entry["name"])

    def _expire(self) -> None:
        now = time.time()
        for key, entry in list(self._tokens.items()):
            if entry["expires_at"] <= now:
                del self._tokens[key]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _secret_of(token: str) -> str:
    if not isinstance(token, str) or not token:
        raise errors.Forbidden("Invalid, used or expired trust token")
    try:
        data = json.loads(base64.b64decode(token.strip(), validate=True))
        if isinstance(data, dict) and isinstance(data.get("secret"), str):
            return data["secret"]
    except ValueError:
        pass
    return token
