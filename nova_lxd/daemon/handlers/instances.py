"""``/1.0/instances`` (also ``/1.0/containers``): list, create from an
image, get, update limits, restore a snapshot, delete."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nova_lxd.daemon import envelopes, errors, views
from nova_lxd.daemon.context import Context, ctx
from nova_lxd.daemon.handlers import migration
from nova_lxd.daemon.middleware import json_body
from nova_lxd.engine import liblxc

_SIZE = re.compile(r"(\d+)\s*([KMGTP]i?B|[KMGTP]|B)?")
_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "KIB": 1024,
          "M": 1000 ** 2, "MB": 1000 ** 2, "MIB": 1024 ** 2,
          "G": 1000 ** 3, "GB": 1000 ** 3, "GIB": 1024 ** 3,
          "T": 1000 ** 4, "TB": 1000 ** 4, "TIB": 1024 ** 4,
          "P": 1000 ** 5, "PB": 1000 ** 5, "PIB": 1024 ** 5}


resources = views.instance_resources


def _size(value: Any) -> int:
    match = _SIZE.fullmatch(str(value).strip())
    if not match:
        raise errors.BadRequest(f"Invalid size {value!r}")
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


def _limits(config: Any) -> dict[str, str]:
    if not isinstance(config, dict):
        raise errors.BadRequest("config is an object of strings")
    limits = {}
    for key, value in config.items():
        if not isinstance(key, str) or not isinstance(value, (str, int)):
            raise errors.BadRequest("config is an object of strings")
        if key.startswith("limits."):
            limits[key] = str(value)
    return limits


def _flag(config: dict[str, Any], key: str) -> bool:
    """A boolean config key as LXD spells them ("true"/"false")."""
    value = str(config.get(key, "false")).lower()
    if value not in ("true", "false", "1", "0"):
        raise errors.BadRequest(f"{key} is true or false, not {value!r}")
    return value in ("true", "1")


def _root_disk(devices: Any) -> int | None:
    if devices in (None, {}):
        return None
    if not isinstance(devices, dict) or not all(
            isinstance(d, dict) for d in devices.values()):
        raise errors.BadRequest("devices is an object of objects")
    root = devices.get("root") or {}
    return _size(root["size"]) if root.get("size") else None


def _instance(c: Context, name: str) -> dict[str, Any]:
    record = c.engine.get(name)
    return views.instance(record, c.engine.status(name))


async def list_instances(request: web.Request) -> web.Response:
    c = ctx(request)
    records = await c.call(c.engine.list)
    level = envelopes.recursion(request)
    if level <= 0:
        return envelopes.sync([views.instance_url(r.name) for r in records])

    def full() -> list[dict[str, Any]]:
        out = []
        for record in records:
            lxc_status = c.engine.status(record.name)
            item = views.instance(record, lxc_status)
            if level >= 2:
                item["state"] = views.state(c.engine.state(record.name))
            out.append(item)
        return out

    return envelopes.sync(await c.call(full))


async def create_instance(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await json_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise errors.BadRequest("name is required")
    if body.get("type", "container") not in ("container", ""):
        raise errors.BadRequest("Only containers are supported")
    source = body.get("source") or {}
    if not isinstance(source, dict) or source.get("type") not in (
            "image", "copy", "migration"):
        raise errors.BadRequest("Only source types 'image', 'copy' and "
                                "'migration' are supported")
    if source["type"] == "copy":
        return _copy(c, name, source, body)
    if source["type"] == "migration":
        return await migration.create_from_migration(request, c, name,
                                                     source)
    ref = source.get("alias") or source.get("fingerprint")
    if not isinstance(ref, str) or not ref:
        raise errors.BadRequest("source needs an alias or a fingerprint")
    if source.get("server"):
        raise errors.BadRequest("Remote image servers are not supported")
    config = body.get("config") or {}
    limits = _limits(config)
    stateful = _flag(config, "migration.stateful")
    root_disk = _root_disk(body.get("devices"))
    start = bool(body.get("start"))

    def run() -> None:
        c.engine.create(name, ref, limits=limits, root_disk=root_disk,
                        stateful=stateful)
        c.events.lifecycle("instance-created", views.instance_url(name))
        if start:
            try:
                c.engine.start(name)
            except BaseException:
                c.engine.delete(name, force=True)
                raise
            c.events.lifecycle("instance-started", views.instance_url(name))

    op = c.operations.task(f"Creating instance {name}", resources(name), run)
    return envelopes.async_(op.to_dict())


def _copy(c: Context, name: str, source: dict[str, Any],
          body: dict[str, Any]) -> web.Response:
    """A new stopped instance from another (``source.source`` =
    ``instance`` or ``instance/snapshot``) with its limits."""
    origin = source.get("source")
    if not isinstance(origin, str) or not origin:
        raise errors.BadRequest("source.source names the instance (or "
                                "instance/snapshot) to copy")
    if body.get("config") or body.get("devices") or body.get("start"):
        raise errors.BadRequest("A copy keeps its source's config: "
                                "change it after the copy")
    instance, _, snapshot = origin.partition("/")

    def run() -> None:
        c.engine.copy(instance, name, snapshot=snapshot or None)
        c.events.lifecycle("instance-created", views.instance_url(name))

    op = c.operations.task(f"Copying {origin} to {name}",
                           resources(name), run)
    return envelopes.async_(op.to_dict())


async def get_instance(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    data = await c.call(_instance, c, name)
    if envelopes.recursion(request) >= 1:
        data["state"] = views.state(await c.call(c.engine.state, name))
    etag = envelopes.etag_of(views.writable(await c.call(c.engine.get,
                                                          name)))
    return envelopes.sync(data, etag=etag)


async def _update(request: web.Request, merge: bool) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    body = await json_body(request)
    record = await c.call(c.engine.get, name)
    envelopes.check_if_match(request,
                             envelopes.etag_of(views.writable(record)))
    if not merge and "restore" in body:
        snapshot = body["restore"]
        if not isinstance(snapshot, str) or not snapshot:
            raise errors.BadRequest("restore names a snapshot")

        def restore() -> None:
            c.engine.snapshot_restore(name, snapshot)
            c.events.lifecycle("instance-restored", views.instance_url(name),
                               {"snapshot": snapshot})

        op = c.operations.task(f"Restoring snapshot {snapshot} of {name}",
                               resources(name), restore)
        return envelopes.async_(op.to_dict())
    current = views.instance_config(record)
    config = body.get("config", {} if merge else current)
    limits = _limits(config)
    for key, value in config.items():
        if not key.startswith("limits.") and current.get(key) != value:
            raise errors.BadRequest(f"{key} cannot be changed: only "
                                    f"limits.* keys can")
    if merge:
        limits = {**record.limits, **limits}
    root_disk = _root_disk(body.get("devices"))
    if root_disk == record.root_disk_bytes:
        root_disk = None  # a GET read back: leave the disk alone

    def run() -> None:
        c.engine.update(name, limits=limits, root_disk=root_disk)
        c.events.lifecycle("instance-updated", views.instance_url(name))

    op = c.operations.task(f"Updating instance {name}", resources(name),
                           run)
    return envelopes.async_(op.to_dict())


async def put_instance(request: web.Request) -> web.Response:
    return await _update(request, merge=False)


async def patch_instance(request: web.Request) -> web.Response:
    return await _update(request, merge=True)


async def post_instance(request: web.Request) -> web.Response:
    """``POST /1.0/instances/{name}``: what the body asks for, by its
    keys: a migration (``nova_lxd.daemon.migration``) or a rename."""
    c = ctx(request)
    name = request.match_info["name"]
    body = await json_body(request)
    for key, action in _POST_ACTIONS:
        if body.get(key):
            return await action(request, c, name, body)
    raise errors.BadRequest("The body needs a new name ({\"name\": ...})")


async def _rename(request: web.Request, c: Context, name: str,
                  body: dict[str, Any]) -> web.Response:
    """As LXD: a running instance is refused (400); the rest (a taken or
    invalid name) is the engine's to say, in the operation."""
    new = body["name"]
    if not isinstance(new, str):
        raise errors.BadRequest("name is a string")
    if await c.call(c.engine.status, name) != liblxc.STOPPED:
        raise errors.BadRequest("Renaming of running instance not allowed: "
                                "stop it first")

    def run() -> None:
        c.engine.rename(name, new)
        c.events.lifecycle("instance-renamed", views.instance_url(new),
                           {"old_name": name})

    old_urls, new_urls = resources(name), resources(new)
    op = c.operations.task(f"Renaming instance {name} to {new}",
                           {k: old_urls[k] + new_urls[k] for k in old_urls},
                           run)
    return envelopes.async_(op.to_dict())


_POST_ACTIONS: tuple[tuple[str, Callable[
    [web.Request, Context, str, dict[str, Any]],
    Awaitable[web.Response]]], ...] = (
    ("migration", migration.migrate_instance),
    ("name", _rename),
)
"""Body key -> action, first match wins (``migration`` bodies carry a
``name`` too, so it comes first)."""


async def delete_instance(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    if await c.call(c.engine.status, name) != liblxc.STOPPED:
        raise errors.BadRequest("Instance is running: stop it first")

    def run() -> None:
        c.engine.delete(name)
        c.events.lifecycle("instance-deleted", views.instance_url(name))

    op = c.operations.task(f"Deleting instance {name}", resources(name), run)
    return envelopes.async_(op.to_dict())
