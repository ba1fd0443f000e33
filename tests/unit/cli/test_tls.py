"""HTTPS remotes: the pinned fingerprint is checked on every connection,
the client presents its certificate, and ``remote add`` pins only what
the user, ``--fingerprint`` or the trust token vouches for."""

from __future__ import annotations

import base64
import json
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nova_lxd.cli import certs, transport
from nova_lxd.cli.client import Client
from nova_lxd.cli.config import Config, Remote
from nova_lxd.cli.errors import CertificateMismatch
from nova_lxd.cli.main import main
from tests.unit.cli.fakeserver import FakeServer, sync


def _fingerprint(pem_path) -> str:
    cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    return transport.fingerprint_of(
        cert.public_bytes(serialization.Encoding.DER))


@pytest.fixture
def server_cert(tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    certs.ensure_client_certificate(cert, key)
    return cert, key


@pytest.fixture
def https(server_cert, conf_dir):
    config = Config()
    certs.ensure_client_certificate(config.client_cert, config.client_key)
    server = FakeServer.tls(*server_cert, client_ca=config.client_cert)
    yield server
    server.close()


def _url(server) -> str:
    return f"https://127.0.0.1:{server.port}"


def test_client_key_is_private_and_p384(conf_dir):
    config = Config()
    certs.ensure_client_certificate(config.client_cert, config.client_key)
    assert config.client_key.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(
        config.client_key.read_bytes(), None)
    assert key.curve.name == "secp384r1"
    before = config.client_cert.read_bytes()
    certs.ensure_client_certificate(config.client_cert, config.client_key)
    assert config.client_cert.read_bytes() == before


def test_pinned_request_presents_the_client_certificate(https,
                                                        server_cert):
    config = Config()
    remote = Remote("r", _url(https), _fingerprint(server_cert[0]))
    assert Client(remote, config).get("/1.0")["api_version"] == "1.0"
    presented = https.peer_certs[-1]
    assert transport.fingerprint_of(presented) == _fingerprint(
        config.client_cert)


def test_wrong_pin_is_refused_before_the_request(https):
    remote = Remote("r", _url(https), "00" * 32)
    with pytest.raises(CertificateMismatch, match="does not match"):
        Client(remote, Config()).get("/1.0")
    assert https.requests == []


def test_websocket_socket_is_pinned_too(https, server_cert):
    config = Config()
    good = Remote("r", _url(https), _fingerprint(server_cert[0]))
    sock = Client(good, config).websocket_socket()
    assert isinstance(sock, ssl.SSLSocket)
    sock.close()
    bad = Remote("r", _url(https), "11" * 32)
    with pytest.raises(CertificateMismatch):
        Client(bad, config).websocket_socket()


def test_fetch_server_certificate(https, server_cert):
    der = transport.fetch_server_certificate(_url(https))
    assert transport.fingerprint_of(der) == _fingerprint(server_cert[0])


def _trust_flow(server):
    """GET /1.0 says untrusted until a certificate is posted."""
    state = {"trusted": False}

    def info(handler, body):
        return sync({"api_version": "1.0", "auth":
                     "trusted" if state["trusted"] else "untrusted"})

    def add(handler, body):
        state["trusted"] = True
        return sync(None, 201, {"Location": "/1.0/certificates/x"})
    server.routes[("GET", "/1.0")] = info
    server.routes[("POST", "/1.0/certificates")] = add


def _token(fingerprint: str) -> str:
    return base64.b64encode(json.dumps({
        "client_name": "laptop", "fingerprint": fingerprint,
        "addresses": [], "secret": "abc", "expires_at": ""}).encode()
    ).decode()


def test_remote_add_with_token_pins_and_trusts(https, server_cert, capsys):
    _trust_flow(https)
    fp = _fingerprint(server_cert[0])
    code = main(["remote", "add", "r1", _url(https), "--token", _token(fp)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"Certificate fingerprint: {fp}" in out
    config = Config()
    assert config.remote("r1").fingerprint == fp
    assert config.server_cert("r1").exists()
    post = [r for r in https.requests if r["method"] == "POST"][0]
    body = json.loads(post["body"])
    assert body["trust_token"] == _token(fp)
    assert "name" not in body and body["type"] == "client"
    der = base64.b64decode(body["certificate"])
    assert transport.fingerprint_of(der) == _fingerprint(config.client_cert)
    assert main(["remote", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr()[0])
    assert {r["name"] for r in listed} == {"local", "r1"}


def test_remote_add_refuses_a_token_for_another_server(https, capsys):
    _trust_flow(https)
    code = main(["remote", "add", "r1", _url(https),
                 "--token", _token("ab" * 32)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "does not match the trust token" in err
    assert https.requests == []
    assert "r1" not in Config().remotes


def test_remote_add_refuses_a_wrong_fingerprint(https, capsys):
    code = main(["remote", "add", "r1", _url(https),
                 "--fingerprint", "cd" * 32, "--accept-certificate"])
    assert code == 1
    assert "does not match --fingerprint" in capsys.readouterr()[1]


def test_remote_add_without_terminal_needs_consent(https, capsys,
                                                   monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code = main(["remote", "add", "r1", _url(https)])
    assert code == 1
    assert "--accept-certificate" in capsys.readouterr()[1]


def test_remote_add_without_token_on_untrusting_server(https, capsys):
    _trust_flow(https)
    code = main(["remote", "add", "r1", _url(https),
                 "--accept-certificate"])
    assert code == 1
    assert "pass --token" in capsys.readouterr()[1]
    assert "r1" not in Config().remotes
