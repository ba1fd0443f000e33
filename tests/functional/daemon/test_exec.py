"""exec beyond pylxd's buffered use: interactive with a pty and the
control socket, cancelling a running command, operation wait timeouts,
and many operations at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json

import aiohttp
import pylxd
import pytest


@pytest.fixture
def running(client, busybox_tarball):
    img = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    client.instances.create(
        {"name": "x1", "source": {"type": "image",
                                  "fingerprint": img.fingerprint},
         "start": True}, wait=True)
    yield client.instances.get("x1")
    inst = client.instances.get("x1")
    inst.stop(wait=True)
    inst.delete(wait=True)


def _session(daemon) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=str(daemon.socket)))


def _ws_url(op: dict, secret: str) -> str:
    return f"http://nlxd/1.0/operations/{op['id']}/websocket?secret={secret}"


def test_interactive_exec(daemon, running):
    async def scenario() -> tuple[bytes, dict]:
        async with _session(daemon) as s:
            r = await s.post("http://nlxd/1.0/instances/x1/exec", json={
                "command": ["sh"], "interactive": True,
                "wait-for-websocket": True, "width": 100, "height": 30})
            op = (await r.json())["metadata"]
            fds = op["metadata"]["fds"]
            assert set(fds) == {"0", "control"}
            tty = await s.ws_connect(_ws_url(op, fds["0"]))
            control = await s.ws_connect(_ws_url(op, fds["control"]))
            await control.send_str(json.dumps({
                "command": "window-resize",
                "args": {"width": "120", "height": "40"}}))
            # Control and tty are separate sockets with no ordering
            # between them (as in LXD): the shell waits (10 s at most,
            # a loaded machine can be slow) for the size to change.
            await tty.send_bytes(b"i=0; while [ \"$(stty size)\" = "
                                 b"'30 100' ] && [ $i -lt 100 ]; do "
                                 b"sleep 0.1; i=$((i+1)); done; "
                                 b"stty size; echo marker-$((6*7)); "
                                 b"exit 5\n")
            output = b""
            async for msg in tty:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    output += msg.data
            w = await s.get(f"http://nlxd/1.0/operations/{op['id']}/wait",
                            params={"timeout": "30"})
            return output, (await w.json())["metadata"]

    output, op = asyncio.run(scenario())
    assert b"marker-42" in output
    assert b"40 120" in output
    assert op["status"] == "Success"
    assert op["metadata"]["return"] == 5


def test_exec_without_websockets(client, running):
    r = client.api.instances["x1"].exec.post(json={
        "command": ["sh", "-c", "exit 7"], "wait-for-websocket": False})
    op = client.operations.wait_for_operation(r.json()["operation"])
    assert op.metadata["return"] == 7


def test_cancel_and_wait_timeout(daemon, client, running):
    async def scenario() -> tuple[dict, dict, dict]:
        async with _session(daemon) as s:
            r = await s.post("http://nlxd/1.0/instances/x1/exec", json={
                "command": ["sleep", "300"], "wait-for-websocket": True})
            op = (await r.json())["metadata"]
            fds = op["metadata"]["fds"]
            sockets = [await s.ws_connect(_ws_url(op, fds[k]))
                       for k in ("0", "1", "2")]
            url = f"http://nlxd/1.0/operations/{op['id']}"
            early = await (await s.get(url + "/wait",
                                       params={"timeout": "0.5"})).json()
            cancel = await (await s.delete(url)).json()
            done = await (await s.get(url + "/wait",
                                      params={"timeout": "30"})).json()
            for ws in sockets:
                await ws.close()
            return early["metadata"], cancel, done["metadata"]

    early, cancel, done = asyncio.run(scenario())
    assert early["status"] == "Running"
    assert early["may_cancel"] is True
    assert cancel["type"] == "sync"
    assert done["status"] in ("Cancelled", "Success")
    assert done["status_code"] in (401, 200)
    r = client.api.session.delete(
        client.api.operations[done["id"]]._api_endpoint)
    assert r.status_code == 400  # already finished
    assert client.api.session.get(
        client.api.operations["nope"]._api_endpoint).status_code == 404
    assert client.api.session.get(
        client.api.operations[done["id"]].websocket._api_endpoint,
        params={"secret": "guess"}).status_code in (400, 403)


def test_many_operations_at_once(client, busybox_tarball):
    img = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    names = [f"m{i}" for i in range(10)]

    def create(name):
        client.instances.create(
            {"name": name, "source": {"type": "image",
                                      "fingerprint": img.fingerprint}},
            wait=True)
        return name

    def mixed(i):
        kind = i % 4
        if kind == 0:
            return len(client.instances.all())
        if kind == 1:
            return client.instances.get(names[i % 10]).status
        if kind == 2:
            return client.api.images.get().status_code
        return client.api.get().status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        assert sorted(pool.map(create, names)) == sorted(names)
        results = list(pool.map(mixed, range(90)))
    assert len(results) == 90
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda n: client.instances.get(n).delete(wait=True),
                      names))
    assert client.instances.all() == []


def test_large_stdin_and_unread_stdin(running):
    payload = b"x" * (1024 * 1024)
    result = running.execute(["wc", "-c"], stdin_payload=payload)
    assert (result.exit_code, result.stdout.strip()) == (0, "1048576")
    # A command that never reads its input still ends cleanly.
    result = running.execute(["sh", "-c", "exit 4"], stdin_payload=payload)
    assert result.exit_code == 4


def test_cancel_before_connecting(client, running):
    r = client.api.instances["x1"].exec.post(json={
        "command": ["touch", "/tmp/ran"], "wait-for-websocket": True})
    op_id = r.json()["metadata"]["id"]
    client.api.operations[op_id].delete()
    done = client.api.operations[op_id].wait.get(
        params={"timeout": 10}).json()["metadata"]
    assert done["status"] == "Cancelled"
    assert running.execute(["test", "-e", "/tmp/ran"]).exit_code == 1
