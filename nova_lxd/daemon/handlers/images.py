"""``/1.0/images``: upload a tarball, list, get, delete, export, and
``/1.0/images/aliases``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from nova_lxd.daemon import envelopes, errors, views
from nova_lxd.daemon.context import Context, ctx
from nova_lxd.daemon.middleware import json_body
from nova_lxd.engine import errors as engine_errors
from nova_lxd.engine.images.store import Image

CHUNK = 1024 * 1024
_SPLIT_PARTS = ("metadata", "rootfs")


def _url(fingerprint: str) -> str:
    return f"/1.0/images/{fingerprint}"


def _uploads(c: Context) -> Path:
    path = c.settings.state_dir / "uploads"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


async def list_images(request: web.Request) -> web.Response:
    c = ctx(request)
    images = await c.call(c.engine.list_images)
    if envelopes.recursion(request) >= 1:
        return envelopes.sync([views.image(i) for i in images])
    return envelopes.sync([_url(i.fingerprint) for i in images])


async def _by_fingerprint(c: Context, ref: str) -> Image:
    """The image whose fingerprint starts with ``ref`` (the engine also
    resolves aliases: here, as in LXD, only fingerprints)."""
    image = await c.call(c.engine.get_image, ref)
    if not image.fingerprint.startswith(ref):
        raise errors.NotFound(f"Image {ref} not found")
    return image


async def get_image(request: web.Request) -> web.Response:
    c = ctx(request)
    image = await _by_fingerprint(c, request.match_info["fp"])
    data = views.image(image)
    return envelopes.sync(data, etag=envelopes.etag_of(
        {"properties": data["properties"], "public": False}))


async def create_image(request: web.Request) -> web.Response:
    """A raw tarball body (LXD's ``X-LXD-*`` headers) streamed to a file
    in the state directory, bounded, then imported by an operation."""
    c = ctx(request)
    if request.content_type == "application/json":
        return _publish(c, await json_body(request))
    if request.content_type.startswith("multipart/"):
        return await _create_split(request)
    limit = c.settings.max_upload_size
    if (request.content_length or 0) > limit:
        raise errors.TooLarge(f"Image larger than {limit} bytes")
    properties = _properties(request.headers.get("X-LXD-properties", ""))
    aliases = tuple(a for a in request.headers.get(
        "X-LXD-aliases", "").split(",") if a)
    fd, tmp = tempfile.mkstemp(dir=_uploads(c), prefix="upload-")
    path = Path(tmp)
    try:
        hasher = hashlib.sha256()
        await _receive(c, request.content.iter_chunked(CHUNK), fd, limit,
                       hasher)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    digest = hasher.hexdigest()
    wanted = request.headers.get("X-LXD-fingerprint")
    if wanted and wanted != digest:
        path.unlink(missing_ok=True)
        raise errors.BadRequest("The upload does not match "
                                "X-LXD-fingerprint")

    def run() -> dict[str, Any]:
        try:
            image = c.engine.import_image(path, aliases=aliases,
                                          properties=properties)
        finally:
            path.unlink(missing_ok=True)
        c.events.lifecycle("image-created", _url(image.fingerprint))
        return {"fingerprint": image.fingerprint, "size": image.size}

    op = c.operations.task("Uploading image", {"images": []}, run)
    return envelopes.async_(op.to_dict())


async def _receive(c: Context, chunks: AsyncIterator[bytes], fd: int,
                   limit: int, digest: Any, size: int = 0) -> int:
    """Write ``chunks`` (a request body or one multipart part) to ``fd``
    (closed after), hashing them into ``digest``; the bytes so far,
    counted from ``size``, never beyond ``limit``."""
    start = size
    with os.fdopen(fd, "wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise errors.TooLarge(f"Image larger than {limit} bytes")
            digest.update(chunk)
            await c.call(out.write, chunk)
    if size == start:
        raise errors.BadRequest("Empty image upload")
    return size


async def _part_chunks(part: Any) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


async def _create_split(request: web.Request) -> web.Response:
    """A split image as pylxd's ``Image.create(rootfs, metadata=...)``
    sends it: multipart parts ``metadata`` then ``rootfs``, each streamed
    to a file in the state directory, bounded together by the upload
    limit; the fingerprint (LXD's: sha256 of metadata then rootfs) is
    checked against ``X-LXD-fingerprint``."""
    c = ctx(request)
    limit = c.settings.max_upload_size
    properties = _properties(request.headers.get("X-LXD-properties", ""))
    aliases = tuple(a for a in request.headers.get(
        "X-LXD-aliases", "").split(",") if a)
    reader = await request.multipart()
    digest = hashlib.sha256()
    paths: list[Path] = []
    size = 0
    try:
        for expected in _SPLIT_PARTS:
            part = await reader.next()
            if part is None or getattr(part, "name", None) != expected:
                raise errors.BadRequest(
                    f"A split image is two parts, metadata then rootfs: "
                    f"part {expected!r} is missing (virtual machine "
                    "images are not supported)")
            fd, tmp = tempfile.mkstemp(dir=_uploads(c),
                                       prefix=f"upload-{expected}-")
            paths.append(Path(tmp))
            size = await _receive(c, _part_chunks(part), fd, limit, digest,
                                  size)
        if await reader.next() is not None:
            raise errors.BadRequest("A split image has only the parts "
                                    f"{', '.join(_SPLIT_PARTS)}")
        wanted = request.headers.get("X-LXD-fingerprint")
        if wanted and wanted != digest.hexdigest():
            raise errors.BadRequest("The upload does not match "
                                    "X-LXD-fingerprint")
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    metadata, rootfs = paths

    def run() -> dict[str, Any]:
        try:
            image = c.engine.import_split_image(
                metadata, rootfs, aliases=aliases, properties=properties)
        finally:
            metadata.unlink(missing_ok=True)
            rootfs.unlink(missing_ok=True)
        c.events.lifecycle("image-created", _url(image.fingerprint))
        return {"fingerprint": image.fingerprint, "size": image.size}

    op = c.operations.task("Uploading split image", {"images": []}, run)
    return envelopes.async_(op.to_dict())


def _publish(c: Context, body: dict[str, Any]) -> web.Response:
    """An image from an instance (through a temporary snapshot) or from
    one of its snapshots (``source.name`` = ``instance/snapshot``)."""
    source = body.get("source") or {}
    kind = source.get("type") if isinstance(source, dict) else None
    name = source.get("name") if isinstance(source, dict) else None
    if kind not in ("snapshot", "instance", "container") or \
            not isinstance(name, str):
        raise errors.BadRequest("Only images from an instance or a "
                                "snapshot can be made: source {type: "
                                "instance|snapshot, name}")
    aliases = tuple(a.get("name") for a in body.get("aliases") or []
                    if isinstance(a, dict) and isinstance(a.get("name"),
                                                          str))
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise errors.BadRequest("properties is an object")
    instance, _, snapshot = name.partition("/")
    if (kind == "snapshot") != bool(snapshot):
        raise errors.BadRequest("A snapshot is named instance/snapshot")

    def run() -> dict[str, Any]:
        snap = snapshot or f"publish-{os.urandom(6).hex()}"
        if not snapshot:
            c.engine.snapshot_create(instance, snap)
        try:
            image = c.engine.snapshot_export(
                instance, snap, aliases=aliases, properties=properties)
        finally:
            if not snapshot:
                c.engine.snapshot_delete(instance, snap)
        c.events.lifecycle("image-created", _url(image.fingerprint))
        return {"fingerprint": image.fingerprint, "size": image.size}

    op = c.operations.task(f"Publishing {name}",
                           {"instances": [f"/1.0/instances/{instance}"]},
                           run)
    return envelopes.async_(op.to_dict())


def _properties(header: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(header)) if header else {}


async def delete_image(request: web.Request) -> web.Response:
    c = ctx(request)
    image = await _by_fingerprint(c, request.match_info["fp"])

    def run() -> None:
        c.engine.delete_image(image.fingerprint)
        c.events.lifecycle("image-deleted", _url(image.fingerprint))

    op = c.operations.task("Deleting image",
                           {"images": [_url(image.fingerprint)]}, run)
    return envelopes.async_(op.to_dict())


async def export_image(request: web.Request) -> web.StreamResponse:
    """The image's tarball: copied by the engine to a private file that
    is unlinked at once and streamed from its descriptor."""
    c = ctx(request)
    image = await _by_fingerprint(c, request.match_info["fp"])
    dest = _uploads(c) / f"export-{os.urandom(8).hex()}"
    await c.call(c.engine.export_image, image.fingerprint, dest)
    with open(dest, "rb") as src:
        dest.unlink()
        response = web.StreamResponse(headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition":
                f'attachment; filename="{image.filename}"',
            "Content-Length": str(image.size)})
        await response.prepare(request)
        while chunk := await c.call(src.read, CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response


async def list_aliases(request: web.Request) -> web.Response:
    c = ctx(request)
    images = await c.call(c.engine.list_images)
    pairs = sorted((a, i.fingerprint) for i in images for a in i.aliases)
    if envelopes.recursion(request) >= 1:
        return envelopes.sync([views.alias(a, fp) for a, fp in pairs])
    return envelopes.sync([f"/1.0/images/aliases/{a}" for a, _ in pairs])


async def _alias_target(c: Context, name: str) -> str:
    try:
        image = await c.call(c.engine.get_image, name)
    except engine_errors.EngineError:
        image = None
    if image is None or name not in image.aliases:
        raise errors.NotFound(f"Alias {name} not found")
    return image.fingerprint


async def get_alias(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["alias"]
    return envelopes.sync(views.alias(name, await _alias_target(c, name)))


async def add_alias(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await json_body(request)
    name, target = body.get("name"), body.get("target")
    if not isinstance(name, str) or not isinstance(target, str):
        raise errors.BadRequest("name and target are strings")
    try:
        await _alias_target(c, name)
    except errors.NotFound:
        pass
    else:
        raise errors.Conflict(f"Alias {name} already exists")
    await c.call(c.engine.add_image_alias, name, target)
    return envelopes.sync(None, status=201,
                          location=f"/1.0/images/aliases/{name}")


async def delete_alias(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["alias"]
    await _alias_target(c, name)
    with contextlib.suppress(engine_errors.NotFound):
        await c.call(c.engine.remove_image_alias, name)
    return envelopes.sync(None)
