"""``.../state`` (read, start/stop/restart/freeze/unfreeze) and
``.../console`` (the console log; ``logs`` lists it too)."""

from __future__ import annotations

from aiohttp import web

from nova_lxd.daemon import envelopes, errors, views
from nova_lxd.daemon.context import ctx
from nova_lxd.daemon.handlers.instances import resources
from nova_lxd.daemon.middleware import json_body

ACTIONS = {"start": "started", "stop": "stopped", "restart": "restarted",
           "freeze": "paused", "unfreeze": "resumed"}


async def get_state(request: web.Request) -> web.Response:
    c = ctx(request)
    st = await c.call(c.engine.state, request.match_info["name"])
    return envelopes.sync(views.state(st))


async def put_state(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    body = await json_body(request)
    action = body.get("action")
    if action not in ACTIONS:
        raise errors.BadRequest(f"Unknown action {action!r}: one of "
                                f"{', '.join(ACTIONS)}")
    if body.get("stateful"):
        raise errors.BadRequest("Stateful stop/start is not supported")
    timeout = body.get("timeout", -1)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise errors.BadRequest("timeout is a number of seconds")
    force = bool(body.get("force", False))
    wait = None if timeout < 0 else float(timeout)
    await c.call(c.engine.get, name)  # 404 now rather than in the op

    def run() -> None:
        if action == "start":
            c.engine.start(name)
        elif action == "stop":
            c.engine.stop(name, timeout=wait, force=force)
        elif action == "restart":
            c.engine.restart(name, timeout=wait, force=force)
        elif action == "freeze":
            c.engine.freeze(name)
        else:
            c.engine.unfreeze(name)
        c.events.lifecycle(f"instance-{ACTIONS[action]}",
                           views.instance_url(name))

    op = c.operations.task(f"{action.capitalize()} instance {name}",
                           resources(name), run)
    return envelopes.async_(op.to_dict())


async def get_console(request: web.Request) -> web.Response:
    c = ctx(request)
    text = await c.call(c.engine.console_log, request.match_info["name"])
    return web.Response(body=text.encode(errors="replace"),
                        content_type="application/octet-stream")
