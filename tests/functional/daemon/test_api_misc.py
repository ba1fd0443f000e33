"""Corners of the API pylxd's happy path does not reach: restart, logs
and console, recursion, directory pulls, upload checks, expired tokens,
what is refused rather than half done."""

from __future__ import annotations

import time

import pylxd
import pytest
from pylxd import exceptions

from tests.functional.daemon.conftest import DaemonProcess


@pytest.fixture
def image(client, busybox_tarball):
    return pylxd.models.Image.create(client, busybox_tarball.read_bytes())


def test_restart_logs_console_recursion(client, image, tmp_path):
    inst = client.instances.create(
        {"name": "r1", "source": {"type": "image",
                                  "fingerprint": image.fingerprint},
         "start": True}, wait=True)
    pid = inst.state().pid
    inst.restart(wait=True)
    assert inst.state().pid not in (0, pid)
    api = client.api.instances["r1"]
    logs = api.logs.get().json()["metadata"]
    assert logs == ["/1.0/instances/r1/logs/console.log"]
    console = api.console.get(is_api=False)
    assert console.status_code == 200
    assert api.logs["console.log"].get(is_api=False).content == \
        console.content
    full = client.api.instances.get(params={"recursion": 2}).json()[
        "metadata"]
    assert full[0]["name"] == "r1" and full[0]["state"]["pid"] > 0

    listing = client.api.session.get(api.files._api_endpoint,
                                     params={"path": "/etc"})
    assert listing.headers["X-LXD-type"] == "directory"
    assert "passwd" in listing.json()["metadata"]
    inst.files.recursive_get("/etc", str(tmp_path / "etc"))
    assert (tmp_path / "etc" / "passwd").read_bytes() == \
        inst.files.get("/etc/passwd")

    with pytest.raises(exceptions.LXDAPIException):
        inst.delete(wait=True)  # running
    inst.stop(wait=True)
    inst.delete(wait=True)


def test_refused_requests(client, image):
    bad = [
        ("post", "instances", {"name": "v1", "type": "virtual-machine",
                               "source": {"type": "image",
                                          "fingerprint": "x"}}),
        ("post", "instances", {"name": "v1", "source": {"type": "none"}}),
        ("post", "instances", {"source": {"type": "image", "alias": "x"}}),
        ("post", "images", {"source": {"type": "url", "url": "http://x"}}),
        ("post", "certificates", {"type": "client", "password": "x"}),
    ]
    for method, path, body in bad:
        r = getattr(client.api.session, method)(
            client.api[path]._api_endpoint, json=body)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["type"] == "error"
    r = client.api.session.post(
        client.api.images._api_endpoint, data=b"not a tarball",
        headers={"X-LXD-fingerprint": "0" * 64})
    assert r.status_code == 400
    assert "fingerprint" in r.json()["error"]
    r = client.api.session.put(
        client.api.instances["nope"].state._api_endpoint,
        json={"action": "start"})
    assert r.status_code == 404
    r = client.api.session.put(
        client.api.instances["nope"].state._api_endpoint,
        json={"action": "explode"})
    assert r.status_code == 400


def test_aliases(client, image):
    client.api.images.aliases.post(json={"name": "bb/latest",
                                         "target": image.fingerprint})
    alias = client.api.images.aliases["bb/latest"].get().json()["metadata"]
    assert alias["target"] == image.fingerprint
    listed = client.api.images.aliases.get(params={"recursion": 1}).json()
    assert [a["name"] for a in listed["metadata"]] == ["bb/latest"]
    r = client.api.session.post(client.api.images.aliases._api_endpoint,
                                json={"name": "bb/latest",
                                      "target": image.fingerprint})
    assert r.status_code == 409
    client.api.images.aliases["bb/latest"].delete()
    with pytest.raises(exceptions.NotFound):
        client.api.images.aliases["bb/latest"].get()
    # A fingerprint prefix is not an alias, nor an alias a fingerprint.
    with pytest.raises(exceptions.NotFound):
        client.api.images.aliases[image.fingerprint[:12]].get()
    client.api.images.aliases.post(json={"name": "bb",
                                         "target": image.fingerprint})
    with pytest.raises(exceptions.NotFound):
        client.api.images["bb"].get()
    assert client.api.images[image.fingerprint[:12]].get().json()[
        "metadata"]["fingerprint"] == image.fingerprint


def test_expired_token(daemon_root, tmp_path):
    from nova_lxd.daemon.auth.tls import make_certificate
    from tests.functional.daemon.test_security import https_client

    daemon = DaemonProcess(daemon_root, trust_token_ttl=10).start()
    try:
        local = pylxd.Client(endpoint=str(daemon.socket))
        token = pylxd.models.Certificate.create_token(local, name="late")
        cert, key = make_certificate("late")
        (tmp_path / "c.crt").write_bytes(cert)
        (tmp_path / "c.key").write_bytes(key)
        late = https_client(daemon, (str(tmp_path / "c.crt"),
                                     str(tmp_path / "c.key")))
        time.sleep(10.5)
        with pytest.raises(exceptions.LXDAPIException) as info:
            late.authenticate(token)
        assert info.value.response.status_code == 403
        assert local.certificates.all() == []
    finally:
        assert daemon.stop() == 0
