"""Migration requests: ``POST /1.0/instances/{name}`` with
``{"migration": true}`` on the source, ``POST /1.0/instances`` with
``source.type = "migration"`` on the target (LXD's API; pylxd's
``Instance.migrate`` drives it). See ``nova_lxd.daemon.migration``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nova_lxd.daemon import envelopes, errors, migration, views
from nova_lxd.daemon.context import Context
from nova_lxd.daemon.handlers.exec import SESSIONS
from nova_lxd.daemon.operations import Operation

Role = Callable[[migration.WebSocket, migration.WebSocket, Operation],
                Awaitable[dict[str, Any]]]


async def migrate_instance(request: web.Request, c: Context, name: str,
                           body: dict[str, Any]) -> web.Response:
    """The source side: stream ``name`` to whoever connects (pull) or to
    ``body.target`` (push); the instance itself is left as it is."""
    await c.call(c.engine.get, name)
    live = bool(body.get("live"))
    if live:
        problem = await c.call(c.engine.live_problem, name)
        if problem:
            raise errors.BadRequest(f"Live migration of {name} is not "
                                    f"possible: {problem}")
    snapshots = not body.get("instance_only")

    async def role(control: migration.WebSocket, fs: migration.WebSocket,
                   op: Operation) -> dict[str, Any]:
        return await migration.send(c, name, control, fs,
                                    snapshots=snapshots, live=live,
                                    progress=_progress(op))

    return _start(request, c, f"Migrating instance {name}", name, role,
                  body.get("target"))


async def create_from_migration(request: web.Request, c: Context,
                                name: str, source: dict[str, Any]
                                ) -> web.Response:
    """The target side: receive ``name`` by dialing the source's
    operation (``mode: pull``, LXD's default) or from a source that
    dials this operation (``mode: push``)."""
    mode = source.get("mode") or "pull"
    if mode not in ("pull", "push"):
        raise errors.BadRequest(f"Invalid migration mode {mode!r}: pull "
                                "or push")
    if await c.call(_exists, c, name):
        raise errors.ApiError(f"Instance {name} already exists", 409)

    async def role(control: migration.WebSocket, fs: migration.WebSocket,
                   op: Operation) -> dict[str, Any]:
        result = await migration.receive(c, name, control, fs,
                                         progress=_progress(op))
        c.events.lifecycle("instance-created", views.instance_url(name))
        return result

    return _start(request, c, f"Receiving instance {name}", name, role,
                  source if mode == "pull" else None)


def _start(request: web.Request, c: Context, description: str, name: str,
           role: Role, peer: Any) -> web.Response:
    """Dial ``peer`` if given, else wait for it to dial this operation."""
    if peer:
        async def dial(op: Operation) -> dict[str, Any]:
            dialed = await migration.Dialed.connect(c, peer)
            try:
                return await role(*await dialed.channels(), op)
            finally:
                await dialed.aclose()

        op = c.operations.task_async(
            description, views.instance_resources(name), dial)
        return envelopes.async_(op.to_dict())
    secrets = {ch: c.operations.new_secret() for ch in migration.CHANNELS}
    accepting = migration.Accepting(secrets)

    async def accept(op: Operation) -> dict[str, Any]:
        try:
            return await role(*await accepting.channels(), op)
        finally:
            accepting.close()
            request.app[SESSIONS].pop(op.id, None)

    op = c.operations.websocket(
        description, views.instance_resources(name), dict(secrets), accept,
        on_cancel=accepting.close)
    request.app[SESSIONS][op.id] = accepting
    return envelopes.async_(op.to_dict())


def _progress(op: Operation) -> Callable[[int], None]:
    def tick(done: int) -> None:
        op.metadata = {**(op.metadata or {}),
                       "fs_progress": f"{done / 1e6:.1f} MB"}
    return tick


def _exists(c: Context, name: str) -> bool:
    try:
        c.engine.get(name)
    except Exception:  # noqa: BLE001 - not found, or invalid: receive says
        return False
    return True
