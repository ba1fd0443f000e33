"""``POST .../console`` (attach, through websockets as exec's) and
``DELETE .../console`` (clear the log); ``GET`` (the log) is in
``state``.

One attachment per instance, as in LXD: a second is refused unless it
asks to take the console over (``force``), which ends the first.
"""

from __future__ import annotations

from aiohttp import web

from nova_lxd.daemon import envelopes, errors
from nova_lxd.daemon.console_session import ConsoleSession
from nova_lxd.daemon.context import Context, ctx
from nova_lxd.daemon.handlers.exec import SESSIONS, _int, start_session
from nova_lxd.daemon.middleware import json_body
from nova_lxd.engine import liblxc

TAKEOVER_TIMEOUT = 10.0


async def attach_console(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    body = await json_body(request)
    kind = body.get("type") or "console"
    if kind != "console":
        raise errors.BadRequest(f"Unknown console type {kind!r}: "
                                f"containers have only 'console'")
    width, height = _int(body, "width", 0), _int(body, "height", 0)
    status = await c.call(c.engine.status, name)
    if status != liblxc.RUNNING:
        raise errors.BadRequest(f"Instance is not running ({status.lower()})")
    await _take_over(request, c, name, bool(body.get("force")))
    secrets = {fd: c.operations.new_secret() for fd in ("0", "control")}
    session = ConsoleSession(c.engine, name, width=width, height=height,
                             secrets=secrets)
    return start_session(request, f"Showing console of {name}", session)


async def _take_over(request: web.Request, c: Context, name: str,
                     force: bool) -> None:
    """Refuse a second attachment, or end the first one when forced."""
    for op_id, session in list(request.app[SESSIONS].items()):
        if not isinstance(session, ConsoleSession) or session.name != name:
            continue
        if not force:
            raise errors.Conflict("This console is already connected. "
                                  "Force is required to take it over.")
        c.operations.cancel(op_id)
        await c.operations.wait(op_id, TAKEOVER_TIMEOUT)


async def clear_console(request: web.Request) -> web.Response:
    c = ctx(request)
    await c.call(c.engine.console_log_clear, request.match_info["name"])
    return envelopes.sync(None)
