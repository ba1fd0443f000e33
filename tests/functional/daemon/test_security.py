"""Who may use the daemon: unix socket permissions, TLS client
certificates, trust tokens, revocation, body limits and file escapes."""

from __future__ import annotations

import base64
import grp
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import warnings

import pylxd
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pylxd import exceptions

from nova_lxd.daemon.auth.tls import make_certificate
from tests.functional.daemon.conftest import DaemonProcess


@pytest.fixture
def make_cert(tmp_path):
    def make(name: str) -> tuple[str, str]:
        cert, key = make_certificate(name)
        cert_path = tmp_path / f"{name}.crt"
        key_path = tmp_path / f"{name}.key"
        cert_path.write_bytes(cert)
        key_path.write_bytes(key)
        return str(cert_path), str(key_path)
    return make


def https_session(daemon, cert=None) -> requests.Session:
    """A session pinning the daemon's certificate (pylxd's adapter), not
    swayed by REQUESTS_CA_BUNDLE."""
    session = pylxd.client.get_session_for_url(
        daemon.url, verify=str(daemon.root / "daemon" / "server.crt"),
        cert=cert)
    session.trust_env = False
    return session


def https_client(daemon, cert=None) -> pylxd.Client:
    return pylxd.Client(endpoint=daemon.url, cert=cert,
                        session=https_session(daemon, cert))


def test_socket_and_key_permissions(daemon):
    st = os.stat(daemon.socket)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (0, 0)
    key = daemon.root / "daemon" / "server.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def _as_nobody_get(socket_path) -> subprocess.CompletedProcess:
    """GET /1.0 over the socket as nobody:nogroup."""
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(socket_path)!r})\n"
        "s.sendall(b'GET /1.0 HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n"
        "print(s.recv(65536).decode())\n")
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         sys.executable, "-c", script], capture_output=True, text=True,
        timeout=30)


def test_socket_group(daemon, daemon_root):
    # Without the group: nobody cannot open the socket.
    refused = _as_nobody_get(daemon.socket)
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr
    daemon.stop()
    group = grp.getgrnam("nogroup")
    daemon = DaemonProcess(daemon_root, socket_group="nogroup").start()
    try:
        st = os.stat(daemon.socket)
        assert (st.st_uid, st.st_gid) == (0, group.gr_gid)
        assert stat.S_IMODE(st.st_mode) == 0o660
        # A member of the group is trusted.
        allowed = _as_nobody_get(daemon.socket)
        assert allowed.returncode == 0, allowed.stderr
        assert '"auth": "trusted"' in allowed.stdout
    finally:
        assert daemon.stop() == 0
    assert not daemon.socket.exists()


def test_server_certificate_and_tls_versions(daemon):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", daemon.port)) as raw, \
            ctx.wrap_socket(raw) as tls:
        assert tls.version() == "TLSv1.3"
        cert = x509.load_der_x509_certificate(tls.getpeercert(True))
    assert isinstance(cert.public_key().curve, ec.SECP384R1)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", daemon.port)) as raw, \
            pytest.raises(ssl.SSLError):
        old.wrap_socket(raw)


def test_untrusted_clients(daemon, make_cert):
    for cert in (None, make_cert("stranger")):
        client = https_client(daemon, cert)
        assert client.host_info["auth"] == "untrusted"
        assert client.host_info["environment"] == {}
        with pytest.raises(exceptions.LXDAPIException) as info:
            client.instances.all()
        assert info.value.response.status_code == 403
        for path in ("/1.0/images", "/1.0/certificates", "/1.0/operations",
                     "/1.0/openapi.json"):
            r = https_session(daemon, cert).get(daemon.url + path)
            assert r.status_code == 403, path
        for body in ({"trust_token": "bogus"},
                     {"trust_token": "bogus", "name": "me"},
                     {"trust_token": "", "name": "me"},
                     {"name": "me"}, {"password": "x", "name": "me"}):
            r = https_session(daemon, cert).post(
                daemon.url + "/1.0/certificates", json=body)
            assert r.status_code in (400, 403), body
            assert https_client(daemon, cert).host_info["auth"] == \
                "untrusted"


def test_token_trust_single_use_and_revocation(daemon, client, make_cert):
    token = pylxd.models.Certificate.create_token(client, name="alice")
    decoded = json.loads(base64.b64decode(token))
    assert decoded["addresses"] == [f"127.0.0.1:{daemon.port}"]
    assert decoded["fingerprint"] == client.host_info["environment"][
        "certificate_fingerprint"]
    alice = https_client(daemon, make_cert("alice"))
    alice.authenticate(token)
    assert alice.trusted
    assert alice.instances.all() == []
    assert alice.host_info["environment"]["certificate_fingerprint"]

    mallory = https_client(daemon, make_cert("mallory"))
    with pytest.raises(exceptions.LXDAPIException):
        mallory.authenticate(token)  # already used
    assert not https_client(daemon, make_cert("mallory")).trusted

    stream = alice.events()
    stream.connect()
    certs = client.certificates.all()
    assert [c.name for c in certs] == ["alice"]
    client.api.certificates[certs[0].fingerprint].delete()
    # Her open event stream is closed too.
    closed = False
    for _ in range(20):
        if not stream.once():
            closed = True
            break
    assert closed
    stream.terminate()
    # The same kept-alive session is refused at once.
    with pytest.raises(exceptions.LXDAPIException) as info:
        alice.instances.all()
    assert info.value.response.status_code == 403
    assert https_client(daemon, alice.cert).host_info["auth"] == \
        "untrusted"


def test_trusted_client_adds_a_certificate(daemon, client, make_cert):
    cert = make_cert("bob")
    with open(cert[0], "rb") as f:
        client.certificates.create("", f.read(), name="bob")
    assert https_client(daemon, cert).trusted


def test_body_limit(daemon, client):
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = client.api.session.post(client.api.instances._api_endpoint,
                                data=big)
    assert r.status_code == 413
    assert r.json()["type"] == "error"


def test_file_escapes_refused(client, busybox_tarball):
    img = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    inst = client.instances.create(
        {"name": "f1", "source": {"type": "image",
                                  "fingerprint": img.fingerprint}},
        wait=True)
    inst.start(wait=True)
    inst.execute(["sh", "-c", "ln -s /etc /root/hostetc; "
                              "ln -s ../../../../../.. /root/up; "
                              "ln -s /etc/shadow /root/shadow"])
    files = client.api.instances["f1"].files
    for path in ("/root/hostetc/shadow", "/root/up/etc/shadow",
                 "/../../etc/shadow", "/root/up"):
        r = files.session.get(files._api_endpoint, params={"path": path})
        if path == "/root/up":
            assert r.headers["X-LXD-type"] == "symlink"
            assert r.content == b"../../../../../.."
        else:
            assert r.status_code in (400, 404), path
            assert b"root:" not in r.content
    r = files.session.get(files._api_endpoint,
                          params={"path": "/root/shadow"})
    assert r.headers["X-LXD-type"] == "symlink"
    for path in ("/root/hostetc/nlxd-escape", "/root/up/tmp/nlxd-escape",
                 "/../nlxd-escape"):
        r = files.session.post(files._api_endpoint, params={"path": path},
                               data=b"x")
        assert r.status_code in (400, 404, 500), path
        assert r.json()["type"] == "error"
        assert "Traceback" not in r.text
    assert not os.path.exists("/etc/nlxd-escape")
    assert not os.path.exists("/tmp/nlxd-escape")
    r = files.session.post(files._api_endpoint,
                           params={"path": "/root/shadow"}, data=b"x")
    assert r.status_code != 200
    inst.stop(wait=True)
    inst.delete(wait=True)


def test_trusted_https_client_end_to_end(daemon, client, make_cert,
                                         busybox_tarball):
    cert = make_cert("carol")
    with open(cert[0], "rb") as f:
        client.certificates.create("", f.read(), name="carol")
    carol = https_client(daemon, cert)
    img = pylxd.models.Image.create(carol, busybox_tarball.read_bytes())
    inst = carol.instances.create(
        {"name": "h1", "source": {"type": "image",
                                  "fingerprint": img.fingerprint},
         "start": True}, wait=True)
    result = inst.execute(["sh", "-c", "echo over-tls; exit 2"])
    assert (result.exit_code, result.stdout) == (2, "over-tls\n")
    inst.files.put("/tmp/x", b"tls file")
    assert inst.files.get("/tmp/x") == b"tls file"
    inst.stop(wait=True)
    inst.delete(wait=True)
