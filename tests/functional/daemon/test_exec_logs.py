"""exec with ``record-output``: pylxd's ``execute`` uses websockets, so
the raw API (over the unix socket, through pylxd's ``client.api``)
checks the operation's ``output``, and fetching, listing and deleting
the recorded files."""

from __future__ import annotations

import pylxd
import pytest
from pylxd import exceptions


@pytest.fixture
def running(client, busybox_tarball):
    image = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    return client.instances.create(
        {"name": "rec", "source": {"type": "image",
                                   "fingerprint": image.fingerprint},
         "start": True}, wait=True)


def _exec(client, body):
    response = client.api.instances["rec"].exec.post(json=body)
    op = response.json()["operation"]
    return client.api.operations[op.split("/")[-1]].wait.get().json()[
        "metadata"]


def test_record_output(client, running):
    api = client.api.instances["rec"]
    done = _exec(client, {"command": ["sh", "-c", "echo out; echo err >&2;"
                                      " exit 4"],
                          "wait-for-websocket": False,
                          "record-output": True})
    meta = done["metadata"]
    assert done["status"] == "Success" and meta["return"] == 4
    out_url, err_url = meta["output"]["1"], meta["output"]["2"]
    assert out_url.startswith("/1.0/instances/rec/logs/exec_")
    assert out_url.endswith(".stdout") and err_url.endswith(".stderr")
    out_file, err_file = out_url.rsplit("/", 1)[1], err_url.rsplit("/", 1)[1]
    assert api.logs[out_file].get(is_api=False).content == b"out\n"
    assert api.logs[err_file].get(is_api=False).content == b"err\n"
    listed = api.logs.get().json()["metadata"]
    assert listed[0] == "/1.0/instances/rec/logs/console.log"
    assert sorted(listed[1:]) == sorted([out_url, err_url])

    api.logs[out_file].delete()
    with pytest.raises(exceptions.NotFound):
        api.logs[out_file].delete()
    assert api.logs.get().json()["metadata"] == [
        "/1.0/instances/rec/logs/console.log", err_url]
    for bad in ("../record.json", "exec_x.stdout", "config"):
        with pytest.raises(exceptions.NotFound):
            api.logs[bad].get(is_api=False).raise_for_status()
    with pytest.raises(exceptions.LXDAPIException) as console:
        api.logs["console.log"].delete()
    assert console.value.response.status_code == 400

    # Without record-output: no output key, no new file.
    plain = _exec(client, {"command": ["true"], "wait-for-websocket": False})
    assert plain["metadata"] == {"return": 0}
    assert len(api.logs.get().json()["metadata"]) == 2

    # The recorded files follow a rename and go with a delete.
    running.stop(wait=True)
    running.rename("rec2", wait=True)
    moved = client.api.instances["rec2"].logs[err_file].get(is_api=False)
    assert moved.content == b"err\n"
    client.instances.get("rec2").delete(wait=True)
