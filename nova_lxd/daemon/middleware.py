"""Request middlewares: every failure becomes an error envelope (never a
traceback), and untrusted clients reach only what LXD lets them."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from oslo_log import log as logging

from nova_lxd.daemon import envelopes, errors
from nova_lxd.daemon.auth import tls
from nova_lxd.daemon.context import ctx

LOG = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TRUSTED: web.RequestKey[bool] = web.RequestKey("trusted", bool)
FINGERPRINT: web.RequestKey[str] = web.RequestKey("fingerprint", str)
"""sha256 of the client's TLS certificate ('' on the unix socket)."""

# What a client without a trusted certificate may call.
UNTRUSTED_ALLOWED = {("GET", "/"), ("GET", "/1.0"), ("GET", "/1.0/"),
                     ("POST", "/1.0/certificates")}


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {404: "Not found", 405: "Method not allowed",
                   413: "Request body too large"}.get(exc.status,
                                                      exc.reason)
        return envelopes.error(message, exc.status)
    except Exception as exc:  # noqa: BLE001 - the one catch-all
        status = errors.status_of(exc)
        if status == 500:
            LOG.exception("%s %s failed", request.method, request.path)
        return envelopes.error(errors.message_of(exc), status)


def is_trusted(request: web.Request) -> bool:
    """Unix socket users are trusted; HTTPS clients by certificate."""
    return request.get(TRUSTED, False)


@web.middleware
async def auth_middleware(request: web.Request,
                          handler: Handler) -> web.StreamResponse:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport else None
    if sock is not None and sock.family == socket.AF_UNIX:
        request[TRUSTED] = True
        request[FINGERPRINT] = ""
    else:
        ssl_object = (transport.get_extra_info("ssl_object")
                      if transport else None)
        fingerprint = tls.peer_fingerprint(ssl_object)
        request[FINGERPRINT] = fingerprint or ""
        # Read on every request: a revoked certificate is refused at
        # once, even on a kept-alive connection.
        request[TRUSTED] = (ssl_object is not None
                              and ctx(request).trust.trusted(fingerprint))
    if not request[TRUSTED] and (request.method, request.path) \
            not in UNTRUSTED_ALLOWED:
        raise errors.Forbidden("not authorized")
    return await handler(request)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (bounded by the app's client_max_size);
    an empty body reads as {}."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"Invalid JSON body: {exc}") from exc
    except RecursionError:
        raise errors.BadRequest("Invalid JSON body: nested too deeply"
                                ) from None
    if not isinstance(data, dict):
        raise errors.BadRequest("The request body is a JSON object")
    return data
