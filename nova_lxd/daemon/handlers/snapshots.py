"""``.../snapshots``: create, list, get, delete (restore is a PUT on the
instance, see ``instances.py``)."""

from __future__ import annotations

from aiohttp import web

from nova_lxd.daemon import envelopes, errors, views
from nova_lxd.daemon.context import ctx
from nova_lxd.daemon.handlers.instances import resources
from nova_lxd.daemon.middleware import json_body


def _url(name: str, snapshot: str) -> str:
    return f"{views.instance_url(name)}/snapshots/{snapshot}"


async def list_snapshots(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    snaps = await c.call(c.engine.snapshot_list, name)
    if envelopes.recursion(request) <= 0:
        return envelopes.sync([_url(name, s.name) for s in snaps])
    record = await c.call(c.engine.get, name)
    return envelopes.sync([views.snapshot(name, s, record) for s in snaps])


async def create_snapshot(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    body = await json_body(request)
    snapshot = body.get("name")
    if snapshot is None:
        taken = {s.name for s in await c.call(c.engine.snapshot_list, name)}
        snapshot = next(f"snap{i}" for i in range(len(taken) + 1)
                        if f"snap{i}" not in taken)
    if not isinstance(snapshot, str) or not snapshot:
        raise errors.BadRequest("name is a string")
    stateful = bool(body.get("stateful", False))

    def run() -> None:
        c.engine.snapshot_create(name, snapshot, stateful=stateful)
        c.events.lifecycle("instance-snapshot-created", _url(name, snapshot))

    op = c.operations.task(f"Snapshotting instance {name}",
                           resources(name), run)
    return envelopes.async_(op.to_dict())


async def get_snapshot(request: web.Request) -> web.Response:
    c = ctx(request)
    name, snapshot = request.match_info["name"], request.match_info["snap"]
    snap = await c.call(c.engine.snapshot_get, name, snapshot)
    record = await c.call(c.engine.get, name)
    return envelopes.sync(views.snapshot(name, snap, record))


async def delete_snapshot(request: web.Request) -> web.Response:
    c = ctx(request)
    name, snapshot = request.match_info["name"], request.match_info["snap"]
    await c.call(c.engine.snapshot_get, name, snapshot)

    def run() -> None:
        c.engine.snapshot_delete(name, snapshot)
        c.events.lifecycle("instance-snapshot-deleted", _url(name, snapshot))

    op = c.operations.task(f"Deleting snapshot {snapshot} of {name}",
                           resources(name), run)
    return envelopes.async_(op.to_dict())
