"""``.../files?path=``: pull (GET) and push (POST) with LXD's ``X-LXD-*``
headers. Paths never leave the container's rootfs: reads go through the
engine's ``read_entry`` and writes through ``push_files``, both walking
the path without following symlinks."""

from __future__ import annotations

from aiohttp import web

from nova_lxd.daemon import envelopes, errors
from nova_lxd.daemon.context import Context, ctx
from nova_lxd.engine.containers import files as rootfs_files


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path.startswith("/"):
        raise errors.BadRequest("path is an absolute path in the instance")
    return path


def _pull(c: Context, name: str, path: str) -> rootfs_files.RootfsEntry:
    return c.engine.pull_file(name, path)


async def get_file(request: web.Request) -> web.Response:
    c = ctx(request)
    entry = await c.call(_pull, c, request.match_info["name"],
                         _path(request))
    headers = {"X-LXD-uid": str(entry.uid), "X-LXD-gid": str(entry.gid),
               "X-LXD-mode": f"{entry.mode:04o}", "X-LXD-type": entry.kind}
    if entry.kind == "directory":
        response = envelopes.sync(list(entry.entries))
        response.headers.update(headers)
        return response
    return web.Response(body=entry.data, headers=headers,
                        content_type="application/octet-stream")


def _int_header(request: web.Request, key: str, default: int,
                base: int = 10) -> int:
    value = request.headers.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value, base)
    except ValueError:
        raise errors.BadRequest(f"Invalid {key} header {value!r}") from None


async def push_file(request: web.Request) -> web.Response:
    c = ctx(request)
    name, path = request.match_info["name"], _path(request)
    kind = request.headers.get("X-LXD-type", "file")
    if kind != "file":
        raise errors.BadRequest(f"X-LXD-type {kind!r} is not supported: "
                                f"only files can be pushed")
    if request.headers.get("X-LXD-write", "overwrite") != "overwrite":
        raise errors.BadRequest("Only X-LXD-write: overwrite is supported")
    mode = _int_header(request, "X-LXD-mode", 0o644, base=8)
    uid = _int_header(request, "X-LXD-uid", 0)
    gid = _int_header(request, "X-LXD-gid", 0)
    limit = rootfs_files.MAX_FILE_BYTES
    if (request.content_length or 0) > limit:
        raise errors.TooLarge(f"Files are {limit} bytes at most")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise errors.TooLarge(f"Files are {limit} bytes at most")
        chunks.append(chunk)
    item = rootfs_files.RootfsFile(path=path, data=b"".join(chunks),
                                   mode=mode, uid=uid, gid=gid)
    await c.call(c.engine.push_files, name, [item])
    return envelopes.sync(None)
