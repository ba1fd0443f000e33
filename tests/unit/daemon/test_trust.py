"""Trust store and tokens: single use, expiry, persistence."""

from __future__ import annotations

import base64
import json
import stat

import pytest

from nova_lxd.daemon import errors
from nova_lxd.daemon.auth import tls
from nova_lxd.daemon.auth.trust import TrustStore, parse_certificate


def test_token_single_use(tmp_path):
    store = TrustStore(tmp_path)
    token = store.new_token("alice", 60, "f" * 64, ["h:8443"])
    decoded = json.loads(base64.b64decode(token["token"]))
    assert decoded["client_name"] == "alice"
    assert decoded["fingerprint"] == "f" * 64
    assert store.use_token(token["token"]) == "alice"
    with pytest.raises(errors.Forbidden):
        store.use_token(token["token"])
    # A restarted daemon does not bring a used token back.
    with pytest.raises(errors.Forbidden):
        TrustStore(tmp_path).use_token(token["secret"])
    assert "secret" not in (tmp_path / "tokens.json").read_text() or \
        token["secret"] not in (tmp_path / "tokens.json").read_text()


def test_token_expires(tmp_path, monkeypatch):
    store = TrustStore(tmp_path)
    token = store.new_token("bob", 10, "", [])
    import time
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 11)
    with pytest.raises(errors.Forbidden):
        store.use_token(token["token"])


@pytest.mark.parametrize("bad", ["", "not a token", "e30=", None])
def test_bad_tokens(tmp_path, bad):
    with pytest.raises(errors.Forbidden):
        TrustStore(tmp_path).use_token(bad)


def test_certificates_add_revoke_persist(tmp_path):
    pem, _ = tls.make_certificate("c")
    text, fingerprint = parse_certificate(pem.decode())
    assert fingerprint == tls.fingerprint_pem(pem)
    bare = "".join(pem.decode().splitlines()[1:-1])
    assert parse_certificate(bare)[1] == fingerprint
    store = TrustStore(tmp_path)
    store.add(text, fingerprint, "c")
    assert stat.S_IMODE((tmp_path / "trust.json").stat().st_mode) == 0o600
    with pytest.raises(errors.Conflict):
        store.add(text, fingerprint, "c")
    assert TrustStore(tmp_path).trusted(fingerprint)
    assert store.get(fingerprint[:12])["name"] == "c"
    store.remove(fingerprint[:12])
    assert not store.trusted(fingerprint)
    assert not TrustStore(tmp_path).trusted(fingerprint)
    assert not store.trusted(None)


def test_invalid_certificate():
    with pytest.raises(errors.BadRequest):
        parse_certificate("-----BEGIN CERTIFICATE-----\nxx\n")
    with pytest.raises(errors.BadRequest):
        parse_certificate("!!!")


def test_server_certificate(tmp_path):
    cert, key = tls.ensure_server_certificate(tmp_path / "state")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = cert.read_bytes()
    assert tls.ensure_server_certificate(tmp_path / "state")[0].read_bytes() \
        == first
    ctx = tls.server_context(cert, key)
    assert ctx.minimum_version.name == "TLSv1_2"
