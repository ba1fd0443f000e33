"""``.../logs``: the console log and the recorded output of commands
(exec with ``record-output``), listed, read and deleted."""

from __future__ import annotations

from aiohttp import web

from nova_lxd.daemon import envelopes, errors, views
from nova_lxd.daemon.context import ctx

CONSOLE_LOG = "console.log"


def log_url(name: str, file: str) -> str:
    return f"{views.instance_url(name)}/logs/{file}"


async def list_logs(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    files = await c.call(c.engine.exec_logs, name)
    return envelopes.sync([log_url(name, f) for f in [CONSOLE_LOG, *files]])


async def get_log(request: web.Request) -> web.Response:
    c = ctx(request)
    name, file = request.match_info["name"], request.match_info["file"]
    if file == CONSOLE_LOG:  # as GET .../console
        text = await c.call(c.engine.console_log, name)
        data = text.encode(errors="replace")
    else:
        data = await c.call(c.engine.exec_log_read, name, file)
    return web.Response(body=data, content_type="application/octet-stream")


async def delete_log(request: web.Request) -> web.Response:
    """Recorded output only: the console log is cleared with ``DELETE
    .../console``."""
    if request.match_info["file"] == CONSOLE_LOG:
        raise errors.BadRequest("The console log is not deleted: clear it "
                                "with DELETE .../console")
    c = ctx(request)
    await c.call(c.engine.exec_log_delete, request.match_info["name"],
                 request.match_info["file"])
    return envelopes.sync(None)
