"""``/1.0/operations``: list, get, wait, cancel."""

from __future__ import annotations

from aiohttp import web

from nova_lxd.daemon import envelopes, errors
from nova_lxd.daemon.context import ctx

_GROUP = {103: "running", 104: "running", 105: "running", 200: "success",
          400: "failure", 401: "failure"}


async def list_operations(request: web.Request) -> web.Response:
    c = ctx(request)
    full = envelopes.recursion(request) >= 1
    groups: dict[str, list] = {}
    for op in c.operations.all():
        groups.setdefault(_GROUP.get(op.status_code, "running"), []).append(
            op.to_dict() if full else f"/1.0/operations/{op.id}")
    return envelopes.sync(groups)


async def get_operation(request: web.Request) -> web.Response:
    op = ctx(request).operations.get(request.match_info["id"])
    return envelopes.sync(op.to_dict())


async def wait_operation(request: web.Request) -> web.Response:
    try:
        timeout = float(request.query.get("timeout", "-1"))
    except ValueError:
        raise errors.BadRequest("timeout is a number of seconds") from None
    op = await ctx(request).operations.wait(request.match_info["id"],
                                            timeout)
    return envelopes.sync(op.to_dict())


async def cancel_operation(request: web.Request) -> web.Response:
    ctx(request).operations.cancel(request.match_info["id"])
    return envelopes.sync(None)
