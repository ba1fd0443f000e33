"""LXD's response envelopes (sync, async, error) and ETags.

Every JSON answer of the API goes through here so that the envelope
fields are spelt once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from nova_lxd.daemon.errors import PreconditionFailed

API = "/1.0"


def _json(body: dict[str, Any], status: int,
          headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body), status=status,
                        content_type="application/json", headers=headers)


def sync(metadata: Any = None, *, status: int = 200,
         etag: str | None = None,
         location: str | None = None) -> web.Response:
    headers = {}
    if etag is not None:
        headers["ETag"] = f'"{etag}"'
    if location is not None:
        headers["Location"] = location
    return _json({"type": "sync", "status": "Success", "status_code": 200,
                  "operation": "", "error_code": 0, "error": "",
                  "metadata": metadata}, status, headers)


def async_(operation: dict[str, Any]) -> web.Response:
    url = f"{API}/operations/{operation['id']}"
    return _json({"type": "async", "status": "Operation created",
                  "status_code": 100, "operation": url, "error_code": 0,
                  "error": "", "metadata": operation}, 202,
                 {"Location": url})


def error(message: str, status: int) -> web.Response:
    return _json({"type": "error", "status": "", "status_code": 0,
                  "operation": "", "error_code": status, "error": message,
                  "metadata": None}, status)


def etag_of(writable: Any) -> str:
    """sha256 over the fields a PUT may change, as LXD computes it."""
    return hashlib.sha256(json.dumps(writable, sort_keys=True).encode()
                          ).hexdigest()


def check_if_match(request: web.Request, current: str) -> None:
    """412 when the client's ``If-Match`` names another version."""
    wanted = request.headers.get("If-Match")
    if wanted is None:
        return
    tags = [t.strip().removeprefix("W/").strip('"')
            for t in wanted.split(",")]
    if "*" not in tags and current not in tags:
        raise PreconditionFailed("ETag doesn't match: the object changed "
                                 "since it was read")


def recursion(request: web.Request) -> int:
    try:
        return int(request.query.get("recursion", "0"))
    except ValueError:
        return 0
