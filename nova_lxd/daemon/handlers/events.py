"""``/1.0/events``: a websocket of operation, lifecycle and logging
events (``?type=``; none: all, as LXD)."""

from __future__ import annotations

import asyncio
import json
import weakref

from aiohttp import web

from nova_lxd.daemon import errors
from nova_lxd.daemon.context import ctx
from nova_lxd.daemon.middleware import FINGERPRINT

TYPES = {"operation", "lifecycle", "logging"}
WEBSOCKETS: web.AppKey[weakref.WeakKeyDictionary] = web.AppKey(
    "events", weakref.WeakKeyDictionary)
"""Open event streams and their client's certificate fingerprint ('' on
the unix socket): closed when the daemon stops or the certificate is
revoked."""


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
    request.app[WEBSOCKETS][ws] = request.get(FINGERPRINT, "")
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
        request.app[WEBSOCKETS].pop(ws, None)
        await ws.close()
    return ws


async def _first(*tasks: asyncio.Task) -> tuple[set, set]:
    return await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)


async def close_streams(app: web.Application, fingerprint: str = "") -> None:
    """Close the event streams of ``fingerprint`` (every stream when
    empty)."""
    for ws, owner in list(app[WEBSOCKETS].items()):
        if not fingerprint or owner == fingerprint:
            await ws.close(code=1008 if fingerprint else 1001,
                           message=b"certificate revoked" if fingerprint
                           else b"server shutdown")
