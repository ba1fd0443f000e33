"""``.../exec`` and ``/1.0/operations/<id>/websocket``. Without
websockets the command runs to its end; ``record-output`` keeps its
stdout and stderr as log files (``metadata.output``, see ``logs``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nova_lxd.daemon import envelopes, errors
from nova_lxd.daemon.context import ctx
from nova_lxd.daemon.exec_session import ExecSession
from nova_lxd.daemon.handlers.logs import log_url
from nova_lxd.daemon.middleware import json_body
from nova_lxd.daemon.views import instance_resources as resources

SESSIONS: web.AppKey[dict[str, ExecSession]] = web.AppKey("exec", dict)


def _strings(value: Any, what: str) -> None:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in value.items()):
        raise errors.BadRequest(f"{what} is an object of strings")


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise errors.BadRequest(f"{key} is a non-negative integer")
    return value


async def execute(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    body = await json_body(request)
    argv = body.get("command")
    if not isinstance(argv, list) or not argv or not all(
            isinstance(a, str) for a in argv):
        raise errors.BadRequest("command is a non-empty list of strings")
    env = body.get("environment") or {}
    _strings(env, "environment")
    cwd = body.get("cwd") or "/"
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise errors.BadRequest("cwd is an absolute path")
    uid, gid = _int(body, "user", 0), _int(body, "group", 0)
    await c.call(c.engine.get, name)
    if not body.get("wait-for-websocket"):
        record = bool(body.get("record-output"))

        def run() -> dict[str, Any]:
            if not record:
                result = c.engine.execute(name, argv, env=env, cwd=cwd,
                                          uid=uid, gid=gid)
                return {"return": result.exit_code}
            result, files = c.engine.execute_recorded(
                name, argv, env=env, cwd=cwd, uid=uid, gid=gid)
            return {"return": result.exit_code,
                    "output": {fd: log_url(name, f)
                               for fd, f in zip(("1", "2"), files,
                                                strict=True)}}

        op = c.operations.task(f"Executing command in {name}",
                               resources(name), run)
        return envelopes.async_(op.to_dict())
    interactive = bool(body.get("interactive"))
    fds = ["0", "control"] if interactive else ["0", "1", "2", "control"]
    secrets = {fd: c.operations.new_secret() for fd in fds}
    session = ExecSession(
        c.engine, name, argv, env=env, cwd=cwd, uid=uid, gid=gid,
        interactive=interactive, width=_int(body, "width", 80),
        height=_int(body, "height", 25), secrets=secrets)
    return start_session(request, f"Executing command in {name}", session)


def start_session(request: web.Request, description: str,
                  session: ExecSession) -> web.Response:
    """The websocket operation that runs ``session`` (exec, console),
    registered for ``operation_websocket`` while it runs."""
    async def run_session(op: Any) -> dict[str, Any]:
        try:
            return await session.run()
        finally:
            request.app[SESSIONS].pop(op.id, None)

    op = ctx(request).operations.websocket(
        description, resources(session.name), {"fds": session.secrets},
        run_session, on_cancel=session.cancel)
    request.app[SESSIONS][op.id] = session
    return envelopes.async_(op.to_dict())


async def operation_websocket(request: web.Request) -> web.StreamResponse:
    op_id = request.match_info["id"]
    ctx(request).operations.get(op_id)
    session = request.app[SESSIONS].get(op_id)
    if session is None:
        raise errors.BadRequest("This operation has no open websockets")
    return await session.serve(request, request.query.get("secret", ""))
