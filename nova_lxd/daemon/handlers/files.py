"""``.../files?path=``: pull (GET), push (POST) and delete (DELETE) with
LXD's ``X-LXD-*`` headers. Paths never leave the container's rootfs: the
engine walks each one without following symlinks (``read_entry``,
``push_files``, ``make_directory``, ``make_symlink``, ``delete_file``)."""

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


def _mode_header(request: web.Request, default: int) -> int:
    """X-LXD-mode's permission bits: pylxd's ``mode=True`` sends a whole
    ``st_mode``, file type included."""
    mode = _int_header(request, "X-LXD-mode", default, base=8)
    if mode < 0:
        raise errors.BadRequest(f"Invalid X-LXD-mode {mode:o}")
    return mode & 0o7777


async def _body(request: web.Request, limit: int) -> bytes:
    if (request.content_length or 0) > limit:
        raise errors.TooLarge(f"Files are {limit} bytes at most")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise errors.TooLarge(f"Files are {limit} bytes at most")
        chunks.append(chunk)
    return b"".join(chunks)


async def push_file(request: web.Request) -> web.Response:
    """A file (replaced or appended to), one directory (made, or kept if
    there), or a symlink whose target is the body."""
    c = ctx(request)
    name, path = request.match_info["name"], _path(request)
    kind = request.headers.get("X-LXD-type", "file")
    write = request.headers.get("X-LXD-write", "overwrite")
    if write not in ("overwrite", "append"):
        raise errors.BadRequest(f"X-LXD-write {write!r}: use overwrite or "
                                f"append")
    uid = _int_header(request, "X-LXD-uid", 0)
    gid = _int_header(request, "X-LXD-gid", 0)
    if kind == "directory":
        mode = _mode_header(request, rootfs_files.DIR_MODE)
        await c.call(c.engine.make_directory, name, path, mode=mode,
                     uid=uid, gid=gid)
    elif kind == "symlink":
        body = await _body(request, rootfs_files.MAX_LINK_TARGET)
        try:
            target = body.decode()
        except UnicodeDecodeError:
            raise errors.BadRequest("A symlink's target is UTF-8 text") \
                from None
        await c.call(c.engine.make_symlink, name, path, target, uid=uid,
                     gid=gid)
    elif kind == "file":
        mode = _mode_header(request, 0o644)
        data = await _body(request, rootfs_files.MAX_FILE_BYTES)
        item = rootfs_files.RootfsFile(path=path, data=data, mode=mode,
                                       uid=uid, gid=gid,
                                       append=write == "append")
        await c.call(c.engine.push_files, name, [item])
    else:
        raise errors.BadRequest(f"X-LXD-type {kind!r}: use file, directory"
                                f" or symlink")
    return envelopes.sync(None)


async def delete_file(request: web.Request) -> web.Response:
    """A file, a symlink or an empty directory (LXD refuses others)."""
    c = ctx(request)
    await c.call(c.engine.delete_file, request.match_info["name"],
                 _path(request))
    return envelopes.sync(None)
