"""Every path of the API with its handler, in one table (the OpenAPI
document is built from it too)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from nova_lxd.daemon.handlers import (
    certificates,
    console,
    events,
    exec,
    files,
    images,
    instances,
    logs,
    operations,
    server,
    snapshots,
    state,
)


class Route(NamedTuple):
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    kind: str = "sync"
    """What a success returns: sync, async (an operation), raw, websocket."""


_INSTANCE = [
    Route("GET", "", instances.list_instances, "List instances"),
    Route("POST", "", instances.create_instance,
          "Create an instance from an image or as a copy", "async"),
    Route("GET", "/{name}", instances.get_instance, "Get an instance"),
    Route("PUT", "/{name}", instances.put_instance,
          "Replace an instance's limits, or restore a snapshot", "async"),
    Route("PATCH", "/{name}", instances.patch_instance,
          "Update an instance's limits", "async"),
    Route("POST", "/{name}", instances.post_instance,
          "Rename a stopped instance ({name: new})", "async"),
    Route("DELETE", "/{name}", instances.delete_instance,
          "Delete a stopped instance", "async"),
    Route("GET", "/{name}/state", state.get_state, "Get the live state"),
    Route("PUT", "/{name}/state", state.put_state,
          "Start, stop, restart, freeze or unfreeze", "async"),
    Route("GET", "/{name}/logs", logs.list_logs, "List log files"),
    Route("GET", "/{name}/logs/{file}", logs.get_log, "Get a log file",
          "raw"),
    Route("DELETE", "/{name}/logs/{file}", logs.delete_log,
          "Delete a recorded exec output file"),
    Route("GET", "/{name}/console", state.get_console,
          "Get the console log", "raw"),
    Route("POST", "/{name}/console", console.attach_console,
          "Attach to the console (websockets, as exec's)", "async"),
    Route("DELETE", "/{name}/console", console.clear_console,
          "Clear the console log"),
    Route("POST", "/{name}/exec", exec.execute, "Run a command", "async"),
    Route("GET", "/{name}/files", files.get_file,
          "Pull a file (or list a directory)", "raw"),
    Route("POST", "/{name}/files", files.push_file,
          "Push a file, a directory or a symlink"),
    Route("DELETE", "/{name}/files", files.delete_file,
          "Delete a file, a symlink or an empty directory"),
    Route("GET", "/{name}/snapshots", snapshots.list_snapshots,
          "List snapshots"),
    Route("POST", "/{name}/snapshots", snapshots.create_snapshot,
          "Create a snapshot", "async"),
    Route("GET", "/{name}/snapshots/{snap}", snapshots.get_snapshot,
          "Get a snapshot"),
    Route("DELETE", "/{name}/snapshots/{snap}", snapshots.delete_snapshot,
          "Delete a snapshot", "async"),
]

ROUTES = [
    Route("GET", "/", server.root, "API versions"),
    Route("GET", "/1.0", server.server_info, "Server information"),
    Route("GET", "/1.0/openapi.json", server.openapi_json,
          "This API's OpenAPI description", "raw"),
    *[r._replace(path=f"/1.0/instances{r.path}") for r in _INSTANCE],
    *[r._replace(path=f"/1.0/containers{r.path}") for r in _INSTANCE],
    Route("GET", "/1.0/images", images.list_images, "List images"),
    Route("POST", "/1.0/images", images.create_image,
          "Import an image tarball (raw body) or a split image "
          "(multipart: metadata, rootfs)", "async"),
    Route("GET", "/1.0/images/aliases", images.list_aliases,
          "List image aliases"),
    Route("POST", "/1.0/images/aliases", images.add_alias,
          "Add an image alias"),
    Route("GET", "/1.0/images/aliases/{alias:.+}", images.get_alias,
          "Get an image alias"),
    Route("DELETE", "/1.0/images/aliases/{alias:.+}", images.delete_alias,
          "Delete an image alias"),
    Route("GET", "/1.0/images/{fp}", images.get_image, "Get an image"),
    Route("DELETE", "/1.0/images/{fp}", images.delete_image,
          "Delete an image", "async"),
    Route("GET", "/1.0/images/{fp}/export", images.export_image,
          "Download an image's tarball", "raw"),
    Route("GET", "/1.0/operations", operations.list_operations,
          "List operations"),
    Route("GET", "/1.0/operations/{id}", operations.get_operation,
          "Get an operation"),
    Route("DELETE", "/1.0/operations/{id}", operations.cancel_operation,
          "Cancel an operation"),
    Route("GET", "/1.0/operations/{id}/wait", operations.wait_operation,
          "Wait for an operation (?timeout=seconds)"),
    Route("GET", "/1.0/operations/{id}/websocket",
          exec.operation_websocket, "Connect an operation's websocket "
          "(?secret=)", "websocket"),
    Route("GET", "/1.0/events", events.events,
          "Event stream (?type=operation,lifecycle,logging)", "websocket"),
    Route("GET", "/1.0/certificates", certificates.list_certificates,
          "List trusted certificates"),
    Route("POST", "/1.0/certificates", certificates.add_certificate,
          "Trust a certificate (untrusted clients: with a trust token), "
          "or make a token ({token: true})"),
    Route("GET", "/1.0/certificates/{fingerprint}",
          certificates.get_certificate, "Get a trusted certificate"),
    Route("DELETE", "/1.0/certificates/{fingerprint}",
          certificates.delete_certificate, "Revoke a certificate"),
]


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
