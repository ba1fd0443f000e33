"""Console attach over websockets (``POST .../console``) on a real
container: output written to /dev/console reaches the client, what it
types reaches a reader of /dev/console, one attachment at a time, the
log keeps being written, and closing ends the operation."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.functional.daemon import test_exec
from tests.functional.daemon.test_exec import _session, _ws_url

running = test_exec.running  # a started busybox instance, x1
BASE = "http://nlxd/1.0/instances/x1"


async def _exec(s: aiohttp.ClientSession, script: str) -> dict:
    """Run ``sh -c script`` in x1 and wait for it (no websockets)."""
    r = await s.post(f"{BASE}/exec", json={
        "command": ["sh", "-c", script], "wait-for-websocket": False})
    op = (await r.json())["metadata"]
    w = await s.get(f"http://nlxd/1.0/operations/{op['id']}/wait",
                    params={"timeout": "30"})
    return (await w.json())["metadata"]


async def _read_until(ws: aiohttp.ClientWebSocketResponse, marker: bytes,
                      timeout: float = 15.0) -> bytes:
    seen = b""

    async def read() -> None:
        nonlocal seen
        while marker not in seen:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.BINARY:
                raise AssertionError(f"websocket ended: {seen!r}")
            seen += msg.data
    await asyncio.wait_for(read(), timeout)
    return seen


def test_console_attach(daemon, running):
    async def scenario() -> dict:
        async with _session(daemon) as s:
            r = await s.post(f"{BASE}/console", json={
                "width": 80, "height": 25, "type": "console"})
            assert r.status == 202, await r.text()
            op = (await r.json())["metadata"]
            fds = op["metadata"]["fds"]
            assert set(fds) == {"0", "control"}
            data = await s.ws_connect(_ws_url(op, fds["0"]))
            control = await s.ws_connect(_ws_url(op, fds["control"]))
            await control.send_str(json.dumps({
                "command": "window-resize",
                "args": {"width": "120", "height": "40"}}))

            second = await s.post(f"{BASE}/console", json={})
            assert second.status == 409, await second.text()

            await _exec(s, "sleep 0.5; echo from-init-side > /dev/console")
            await _read_until(data, b"from-init-side")

            # A reader of /dev/console in the container gets what we type.
            reader = await s.post(f"{BASE}/exec", json={
                "command": ["sh", "-c", "head -n1 /dev/console > /typed"],
                "wait-for-websocket": False})
            reader_op = (await reader.json())["metadata"]
            await asyncio.sleep(0.5)
            await data.send_bytes(b"typed-by-client\r")
            await s.get(f"http://nlxd/1.0/operations/{reader_op['id']}"
                        f"/wait", params={"timeout": "30"})
            typed = await _exec(s, "grep -q typed-by-client /typed")
            assert typed["metadata"]["return"] == 0, typed

            await data.close()
            await control.close()
            w = await s.get(f"http://nlxd/1.0/operations/{op['id']}/wait",
                            params={"timeout": "30"})
            done = (await w.json())["metadata"]

            # Released: a new attachment works, and force takes it over.
            again = await s.post(f"{BASE}/console", json={})
            assert again.status == 202, await again.text()
            first = (await again.json())["metadata"]
            forced = await s.post(f"{BASE}/console", json={"force": True})
            assert forced.status == 202, await forced.text()
            taken = await s.get(
                f"http://nlxd/1.0/operations/{first['id']}")
            assert (await taken.json())["metadata"]["status"] in (
                "Cancelled", "Failure"), await taken.text()
            last = (await forced.json())["metadata"]
            await s.delete(f"http://nlxd/1.0/operations/{last['id']}")
            return done

    done = asyncio.run(scenario())
    assert done["status"] == "Success", done
    assert "return" not in done["metadata"]


def test_console_log_kept_and_cleared(client, running):
    running.execute(["sh", "-c", "echo to-the-log > /dev/console"])
    api = running.api
    assert b"to-the-log" in api.console.get(is_api=False).content
    assert api.console.delete().status_code == 200
    assert b"to-the-log" not in api.console.get(is_api=False).content


def test_console_refused_when_stopped(client, running):
    running.stop(wait=True)
    url = running.api.console._api_endpoint
    try:
        r = client.api.session.post(url, json={"width": 80, "height": 25})
        assert r.status_code == 400
        assert "not running" in r.json()["error"]
        r = client.api.session.post(url, json={"type": "vga"})
        assert r.status_code == 400
    finally:
        running.start(wait=True)


def test_console_ends_when_the_container_stops(daemon, running):
    async def scenario() -> dict:
        async with _session(daemon) as s:
            r = await s.post(f"{BASE}/console", json={})
            op = (await r.json())["metadata"]
            fds = op["metadata"]["fds"]
            data = await s.ws_connect(_ws_url(op, fds["0"]))
            await asyncio.sleep(0.5)
            stop = await s.put(f"{BASE}/state",
                               json={"action": "stop", "force": True})
            assert stop.status == 202, await stop.text()
            async for _msg in data:
                pass  # until the server closes it
            w = await s.get(f"http://nlxd/1.0/operations/{op['id']}/wait",
                            params={"timeout": "30"})
            return (await w.json())["metadata"]

    done = asyncio.run(scenario())
    assert done["status"] == "Success", done
    running.sync()
    running.start(wait=True)
