"""pylxd, LXD's own Python client, end to end over the unix socket."""

from __future__ import annotations

import json
import os
import time

import pylxd
import pytest
from pylxd import exceptions


@pytest.fixture
def image(client, busybox_tarball):
    img = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    img.add_alias("busybox", "")
    return img


def test_server_info(client, daemon):
    assert client.trusted
    info = client.host_info
    assert info["api_version"] == "1.0"
    assert "instances" in info["api_extensions"]
    env = info["environment"]
    assert len(env["certificate_fingerprint"]) == 64
    assert "BEGIN CERTIFICATE" in env["certificate"]


def test_images(client, image, busybox_tarball, daemon):
    assert len(image.fingerprint) == 64
    assert [i.fingerprint for i in client.images.all()] == [
        image.fingerprint]
    got = client.images.get_by_alias("busybox")
    assert got.fingerprint == image.fingerprint
    assert got.aliases[0]["name"] == "busybox"
    exported = got.export()
    assert exported.read() == busybox_tarball.read_bytes()
    got.delete_alias("busybox")
    with pytest.raises(exceptions.NotFound):
        client.images.get_by_alias("busybox")
    got.delete(wait=True)
    assert client.images.all() == []
    with pytest.raises(exceptions.NotFound):
        client.images.get(image.fingerprint)


def test_instance_lifecycle(client, image):
    inst = client.instances.create(
        {"name": "c1", "source": {"type": "image", "alias": "busybox"},
         "config": {"limits.memory": "256MiB"}}, wait=True)
    assert inst.status == "Stopped"
    assert inst.config["limits.memory"] == "256MiB"
    assert [i.name for i in client.instances.all()] == ["c1"]
    assert client.containers.get("c1").name == "c1"

    inst.start(wait=True)
    inst.sync()
    assert inst.status == "Running"
    state = inst.state()
    assert state.pid > 0

    result = inst.execute(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.exit_code == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    result = inst.execute(["cat"], stdin_payload="piped in")
    assert (result.exit_code, result.stdout) == (0, "piped in")

    inst.files.put("/root/hello.txt", b"hello\n", mode=0o600, uid=1000,
                   gid=1000)
    assert inst.files.get("/root/hello.txt") == b"hello\n"
    out = inst.execute(["stat", "-c", "%a %u %g", "/root/hello.txt"])
    assert out.stdout.strip() == "600 1000 1000"
    response = client.api.instances["c1"].files.get(
        params={"path": "/root/hello.txt"}, is_api=False)
    assert response.headers["X-LXD-mode"] == "0600"
    assert response.headers["X-LXD-uid"] == "1000"

    inst.freeze(wait=True)
    inst.sync()
    assert inst.status == "Frozen"
    inst.unfreeze(wait=True)
    inst.sync()
    assert inst.status == "Running"

    inst.config["limits.cpu"] = "1"
    inst.save(wait=True)
    assert client.instances.get("c1").config["limits.cpu"] == "1"

    inst.stop(wait=True)
    inst.sync()
    assert inst.status == "Stopped"
    inst.delete(wait=True)
    assert client.instances.all() == []


def test_snapshots(client, image):
    inst = client.instances.create(
        {"name": "s1", "source": {"type": "image", "alias": "busybox"}},
        wait=True)
    inst.files.put("/etc/marker", b"before")
    inst.snapshots.create("snap0", wait=True)
    assert [s.name for s in inst.snapshots.all()] == ["snap0"]
    inst.files.put("/etc/marker", b"after")
    snap = inst.snapshots.get("snap0")
    published = snap.publish(wait=True)
    assert published.fingerprint != image.fingerprint
    snap.restore(wait=True)
    assert inst.files.get("/etc/marker") == b"before"
    from_instance = inst.publish(wait=True)
    copy = client.instances.create(
        {"name": "s2", "source": {"type": "image",
                                  "fingerprint": from_instance.fingerprint}},
        wait=True)
    assert copy.files.get("/etc/marker") == b"before"
    copy.delete(wait=True)
    copy = client.instances.create(
        {"name": "s3", "source": {"type": "copy", "source": "s1/snap0"}},
        wait=True)
    assert copy.files.get("/etc/marker") == b"before"
    copy.delete(wait=True)
    snap.delete(wait=True)
    assert inst.snapshots.all() == []
    clone = client.instances.create(
        {"name": "s4", "source": {"type": "copy", "source": "s1"}},
        wait=True)
    assert clone.files.get("/etc/marker") == b"before"
    clone.delete(wait=True)
    inst.delete(wait=True)


def test_errors_are_envelopes(client, image):
    with pytest.raises(exceptions.NotFound):
        client.instances.get("nope")
    with pytest.raises(exceptions.LXDAPIException) as info:
        client.instances.create(
            {"name": "bad_name", "source": {"type": "image",
                                            "alias": "busybox"}},
            wait=True)
    assert "Invalid name" in str(info.value)
    response = client.api.session.post(
        client.api.instances._api_endpoint, data=b"{not json")
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert "Traceback" not in response.text


def test_operations_and_etag(client, image):
    response = client.api.instances.post(json={
        "name": "o1", "source": {"type": "image", "alias": "busybox"}})
    assert response.status_code == 202
    op_url = response.json()["operation"]
    op_id = op_url.rsplit("/", 1)[-1]
    waited = client.api.operations[op_id].wait.get(
        params={"timeout": 60}).json()["metadata"]
    assert waited["status"] == "Success"
    assert client.api.operations.get().json()["metadata"]["success"]

    got = client.api.instances["o1"].get()
    etag = got.headers["ETag"]
    body = got.json()["metadata"]
    body["config"]["limits.memory"] = "128MiB"
    stale = client.api.session.put(
        client.api.instances["o1"]._api_endpoint, json=body,
        headers={"If-Match": '"0000"'})
    assert stale.status_code == 412
    ok = client.api.instances["o1"].put(json=body,
                                        headers={"If-Match": etag})
    assert ok.status_code == 202
    client.operations.wait_for_operation(ok.json()["operation"])
    assert client.instances.get("o1").config["limits.memory"] == "128MiB"
    client.instances.get("o1").delete(wait=True)


def test_events(client, image):
    ws = client.events()
    ws.connect()
    try:
        time.sleep(0.2)
        client.instances.create(
            {"name": "e1", "source": {"type": "image", "alias": "busybox"}},
            wait=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ws.once()
            if any(m["type"] == "lifecycle"
                   and m["metadata"]["action"] == "instance-created"
                   for m in ws.messages):
                break
        kinds = {m["type"] for m in ws.messages}
        assert {"operation", "lifecycle"} <= kinds, json.dumps(ws.messages)
    finally:
        ws.close()
    client.instances.get("e1").delete(wait=True)


def test_directories_trees_and_deletes(client, image, tmp_path):
    """pylxd's mk_dir, recursive_put and delete; symlink and append
    pushes as LXD takes them; nothing leaves the rootfs."""
    inst = client.instances.create(
        {"name": "f1", "source": {"type": "image", "alias": "busybox"}},
        wait=True)
    inst.start(wait=True)

    def stat(path: str) -> str:
        out = inst.execute(["stat", "-c", "%F %a %u %g", path])
        assert out.exit_code == 0, out.stderr
        return out.stdout.strip()

    inst.files.mk_dir("/srv", mode=0o2770, uid=1000, gid=1001)
    assert stat("/srv") == "directory 2770 1000 1001"
    inst.files.mk_dir("/srv")  # already there: fine, left as it is
    assert stat("/srv") == "directory 2770 1000 1001"
    src = tmp_path / "tree"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.txt").write_bytes(b"top\n")
    (src / "a" / "b" / "deep.bin").write_bytes(b"\0deep")
    os.chmod(src / "a", 0o711)
    inst.files.recursive_put(str(src), "/srv/tree", mode=True, uid=7,
                             gid=8)
    assert inst.files.get("/srv/tree/a/b/deep.bin") == b"\0deep"
    assert inst.files.get("/srv/tree/top.txt") == b"top\n"
    assert stat("/srv/tree/a") == "directory 711 7 8"
    assert stat("/srv/tree/top.txt") == "regular file 644 7 8"
    listing = client.api.instances["f1"].files.get(
        params={"path": "/srv/tree"}, is_api=False)
    assert json.loads(listing.content)["metadata"] == ["a", "top.txt"]

    files = client.api.instances["f1"].files
    files.post(params={"path": "/srv/tree/top.txt"}, data=b"more\n",
               headers={"X-LXD-write": "append"})
    assert inst.files.get("/srv/tree/top.txt") == b"top\nmore\n"
    files.post(params={"path": "/srv/link"}, data=b"tree/top.txt",
               headers={"X-LXD-type": "symlink"})
    assert inst.execute(["cat", "/srv/link"]).stdout == "top\nmore\n"

    with pytest.raises(exceptions.LXDAPIException, match="not empty"):
        inst.files.delete("/srv/tree/a")
    inst.files.delete("/srv/tree/a/b/deep.bin")
    inst.files.delete("/srv/tree/a/b")
    inst.files.delete("/srv/link")
    assert inst.files.get("/srv/tree/top.txt") == b"top\nmore\n"
    assert json.loads(client.api.instances["f1"].files.get(
        params={"path": "/srv/tree/a"}, is_api=False).content)[
        "metadata"] == []
    with pytest.raises(exceptions.LXDAPIException, match="not found"):
        inst.files.delete("/srv/tree/a/b")

    # Links the tenant makes lead nowhere: the host keeps its files.
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "keep").write_bytes(b"host")
    inst.execute(["ln", "-s", str(outside), "/srv/out"])
    inst.execute(["ln", "-s", "/", "/srv/root"])
    for path in ("/srv/out/keep", f"/srv/root{outside}/keep",
                 "/srv/../../keep"):
        with pytest.raises(exceptions.LXDAPIException):
            inst.files.delete(path)
        with pytest.raises(exceptions.LXDAPIException):
            inst.files.mk_dir(path + "-dir")
        with pytest.raises(exceptions.LXDAPIException):
            inst.files.put(path, b"x", mode=0o644)
    assert [p.name for p in outside.iterdir()] == ["keep"]
    assert (outside / "keep").read_bytes() == b"host"
    inst.stop(wait=True)
    inst.delete(wait=True)
