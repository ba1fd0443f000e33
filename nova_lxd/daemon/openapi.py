"""The OpenAPI 3 description served at ``/1.0/openapi.json``, built from
the route table so that it cannot list a path the daemon does not
serve."""

from __future__ import annotations

import functools
import re
from typing import Any

_ENVELOPE = {"type": "object", "required": ["type"], "properties": {
    "type": {"type": "string", "enum": ["sync", "async", "error"]},
    "status": {"type": "string"}, "status_code": {"type": "integer"},
    "operation": {"type": "string"}, "error_code": {"type": "integer"},
    "error": {"type": "string"}, "metadata": {}}}
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_QUERY = {"recursion": "integer", "timeout": "number", "secret": "string",
          "path": "string", "type": "string"}


def _parameters(path: str, method: str) -> list[dict[str, Any]]:
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "string"}}
              for name in _PARAM.findall(path)]
    if method == "GET" and not path.endswith("}") or path.endswith("/wait"):
        params.append({"name": "recursion", "in": "query",
                       "schema": {"type": "integer"}})
    for name in ("timeout", "secret", "path"):
        if (name == "timeout" and path.endswith("/wait")) or \
                (name == "secret" and path.endswith("/websocket")) or \
                (name == "path" and path.endswith("/files")):
            params.append({"name": name, "in": "query",
                           "schema": {"type": _QUERY[name]}})
    return params


def _responses(kind: str) -> dict[str, Any]:
    error = {"description": "Error envelope", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/"
                                                "Envelope"}}}}
    ok: dict[str, Any] = {"application/json": {"schema": {
        "$ref": "#/components/schemas/Envelope"}}}
    if kind == "raw":
        ok = {"application/octet-stream": {}, "application/json": {}}
    responses = {"400": error, "403": error, "404": error, "409": error,
                 "500": error}
    if kind == "async":
        responses["202"] = {"description": "Operation created",
                            "content": ok}
    elif kind == "websocket":
        responses["101"] = {"description": "Switching to a websocket"}
    else:
        responses["200"] = {"description": "Success", "content": ok}
        responses["201"] = {"description": "Created", "content": ok}
    return responses


@functools.cache
def document() -> dict[str, Any]:
    from nova_lxd.daemon.routes import ROUTES

    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        path = _PARAM.sub(r"{\1}", route.path)
        op: dict[str, Any] = {"summary": route.summary,
                              "operationId": f"{route.method.lower()}"
                                             f"{path.replace('/', '_')}",
                              "parameters": _parameters(route.path,
                                                        route.method),
                              "responses": _responses(route.kind)}
        if route.method in ("POST", "PUT", "PATCH"):
            op["requestBody"] = {"required": False, "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/octet-stream": {}}}
        paths.setdefault(path, {})[route.method.lower()] = op
    return {"openapi": "3.0.3",
            "info": {"title": "nlxd: LXD 1.0 REST API subset",
                     "version": "1.0"},
            "paths": paths,
            "components": {"schemas": {"Envelope": _ENVELOPE}}}
