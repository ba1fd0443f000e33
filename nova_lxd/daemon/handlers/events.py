"""``/1.0/events``: a websocket of operation and lifecycle events."""

from __future__ import annotations

import asyncio
import json
import weakref

from aiohttp import web

from nova_lxd.daemon import errors
from nova_lxd.daemon.context import ctx

TYPES = {"operation", "lifecycle", "logging"}
WEBSOCKETS: web.AppKey[weakref.WeakSet] = web.AppKey("events",
                                                     weakref.WeakSet)
"""Open event streams, closed when the daemon stops."""


async def events(request: web.Request) -> web.WebSocketResponse:
    wanted = frozenset(t for t in request.query.get("type", "").split(",")
                       if t)
    if wanted - TYPES:
        raise errors.BadRequest(f"Unknown event types: "
                                f"{', '.join(sorted(wanted - TYPES))}")
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    hub = ctx(request).events
    queue = hub.subscribe(wanted)
    request.app[WEBSOCKETS].add(ws)
    try:
        reader = request.loop.create_task(ws.receive())
        while not ws.closed:
            getter = request.loop.create_task(queue.get())
            done, _ = await _first(reader, getter)
            if reader in done:
                getter.cancel()
                break
            await ws.send_str(json.dumps(getter.result()))
        reader.cancel()
    finally:
        hub.unsubscribe(queue)
        request.app[WEBSOCKETS].discard(ws)
        await ws.close()
    return ws


async def _first(*tasks: asyncio.Task) -> tuple[set, set]:
    return await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
