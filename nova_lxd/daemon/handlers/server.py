"""``/`` and ``/1.0``: API versions and server information, and the
OpenAPI description of the routes."""

from __future__ import annotations

import os
import platform
from typing import Any

from aiohttp import web

from nova_lxd.daemon import envelopes, openapi, views
from nova_lxd.daemon.context import ctx
from nova_lxd.daemon.middleware import FINGERPRINT, is_trusted
from nova_lxd.engine import liblxc

API_EXTENSIONS = [
    "etag", "patch", "container_exec_signal_handling", "instances",
    "instance_create_start", "explicit_trust_token", "certificate_token",
    "image_export", "operation_wait", "file_delete", "file_append",
    "file_symlinks", "container_push", "container_push_target",
]
VERSION = "1.0"


async def root(request: web.Request) -> web.Response:
    return envelopes.sync(["/1.0"])


async def server_info(request: web.Request) -> web.Response:
    c = ctx(request)
    trusted = is_trusted(request)
    info: dict[str, Any] = {
        "api_extensions": API_EXTENSIONS, "api_status": "stable",
        "api_version": "1.0", "auth": "trusted" if trusted else "untrusted",
        "public": False, "auth_methods": ["tls"], "environment": {},
        "config": {}}
    if trusted:
        settings = c.settings
        uname = platform.uname()
        info["config"] = {"core.https_address": settings.https_address}
        info["environment"] = {
            "addresses": settings.addresses,
            "architectures": [views.architecture()],
            "certificate": settings.server_certificate,
            "certificate_fingerprint": settings.server_fingerprint,
            "driver": "lxc", "driver_version": liblxc.version(),
            "kernel": uname.system, "kernel_architecture": uname.machine,
            "kernel_version": uname.release, "server": "nlxd",
            "server_name": uname.node, "server_pid": os.getpid(),
            "server_version": VERSION, "server_clustered": False,
            "storage": c.engine.config.storage_driver,
            "project": "default", "firewall": "none"}
        info["auth_user_name"] = request.get(FINGERPRINT) or "root"
        info["auth_user_method"] = ("tls" if request.get(FINGERPRINT)
                                    else "unix")
    return envelopes.sync(info)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())
