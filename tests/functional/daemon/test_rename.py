"""``POST /1.0/instances/{name}``: pylxd's rename against a real nlxd;
a running instance, a taken name and a body without a name are
refused."""

from __future__ import annotations

import pylxd
import pytest
from pylxd import exceptions


@pytest.fixture
def image(client, busybox_tarball):
    image = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    image.add_alias("busybox", "")
    return image


def _create(client, name, start=False):
    return client.instances.create(
        {"name": name, "source": {"type": "image", "alias": "busybox"},
         "start": start}, wait=True)


def test_rename_with_pylxd(client, image):
    inst = _create(client, "old", start=True)
    inst.execute(["sh", "-c", "echo kept > /data"])
    inst.snapshots.create("s1", wait=True)
    with pytest.raises(exceptions.LXDAPIException) as refused:
        inst.rename("new", wait=True)
    assert refused.value.response.status_code == 400
    assert "running" in str(refused.value)
    inst.stop(wait=True)

    inst.rename("new", wait=True)
    assert [i.name for i in client.instances.all()] == ["new"]
    with pytest.raises(exceptions.NotFound):
        client.instances.get("old")
    renamed = client.containers.get("new")
    assert [s.name for s in renamed.snapshots.all()] == ["s1"]
    renamed.start(wait=True)
    assert renamed.execute(["cat", "/data"]).stdout == "kept\n"
    assert renamed.execute(["hostname"]).stdout.strip() == "new"
    renamed.stop(wait=True)

    _create(client, "other")
    with pytest.raises(exceptions.LXDAPIException) as taken:
        renamed.rename("other", wait=True)
    assert "already exists" in str(taken.value)
    with pytest.raises(exceptions.LXDAPIException) as bad:
        renamed.rename("bad_name", wait=True)
    assert "Invalid name" in str(bad.value)
    assert sorted(i.name for i in client.instances.all()) == ["new",
                                                              "other"]


def test_post_body_dispatch(client, image):
    _create(client, "c1")
    api = client.api.containers["c1"]
    # (``migration`` bodies: see test_migration.py.)
    for body, message in (
            ({}, "needs a new name"),
            ({"name": 5}, "name is a string")):
        with pytest.raises(exceptions.LXDAPIException) as refused:
            api.post(json=body)
        assert refused.value.response.status_code == 400
        assert message in str(refused.value)
    with pytest.raises(exceptions.NotFound):
        client.api.instances["nope"].post(json={"name": "c3"})
