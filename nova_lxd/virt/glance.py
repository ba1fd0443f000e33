"""Glance images into engine images.

The engine converts every image format itself (rootfs tarballs, LXD
unified tarballs, disk images); all this module does is fetch the bytes
from Glance once and tell the engine where they came from, so that the
next instance of the same image reuses the converted copy without a
download.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from nova.image import glance
from oslo_concurrency import lockutils
from oslo_log import log as logging

from nova_lxd.engine import errors
from nova_lxd.engine.images.store import Image

LOG = logging.getLogger(__name__)
_PREFIX = ".glance-"


def _field(image_meta: Any, name: str) -> Any:
    """An ImageMeta field, or None when Glance did not send it."""
    return getattr(image_meta, name) if image_meta.obj_attr_is_set(name) \
        else None


def origin_of(image_meta: Any) -> dict[str, Any]:
    """The engine ``origin`` of a Glance image: id plus checksum, so that
    an image re-uploaded under the same id is not mistaken for the old."""
    origin = {"glance_id": image_meta.id}
    checksum = _field(image_meta, "checksum")
    if checksum:
        origin["checksum"] = checksum
    return origin


def ensure_image(engine: Any, context: Any, image_meta: Any,
                 download_dir: Path) -> Image:
    """The engine image for ``image_meta`` (an ``Engine`` or its privsep
    proxy), downloaded into ``download_dir`` and imported the first
    time."""
    origin = origin_of(image_meta)
    # One download per image even when several instances of a new image
    # are spawned at once (nova-compute runs spawns in parallel threads).
    with lockutils.lock(f"nova-lxd-glance-{image_meta.id}"):
        known = engine.find_image(origin)
        if known is not None:
            return known
        return _download_and_import(engine, context, image_meta, origin,
                                    download_dir)


def remove_stale_downloads(root: Path) -> list[Path]:
    """Delete partial downloads a killed nova-compute left in ``root``
    (called at start-up, before any spawn of this service)."""
    stale = sorted(p for prefix in (_PREFIX, ".upload-")
                   for p in Path(root).glob(prefix + "*"))
    for path in stale:
        LOG.warning("Removing partial image download %s", path)
        path.unlink(missing_ok=True)
    return stale


def _download_and_import(engine: Any, context: Any, image_meta: Any,
                         origin: dict[str, Any], download_dir: Path) -> Image:
    Path(download_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix=_PREFIX, dir=download_dir)
    os.close(fd)
    path = Path(name)
    try:
        LOG.info("Downloading image %s from Glance", image_meta.id)
        glance.API().download(context, image_meta.id, dest_path=str(path))
        return _import(engine, path, image_meta, origin)
    finally:
        path.unlink(missing_ok=True)


def _import(engine: Any, path: Path, image_meta: Any,
            origin: dict[str, Any]) -> Image:
    """Import the download; errors name the Glance image, never the
    host path of the download (the user reads them in the fault)."""
    try:
        return engine.import_image(
            path, origin=origin,
            disk_format=_field(image_meta, "disk_format"),
            container_format=_field(image_meta, "container_format"))
    except errors.EngineError as exc:
        # Across privsep only the message survives: find the reason after
        # the path ("Invalid image <path>: <reason>.").
        text = str(exc)
        reason = exc.kwargs.get("reason") or text.split(f"{path}: ", 1)[-1]
        new = type(exc)(text.replace(str(path),
                                     f"Glance image {image_meta.id}"))
        new.kwargs = {"reason": str(reason).rstrip(".")}
        raise new from exc


def snapshot_metadata(context: Any, image_id: str) -> dict[str, Any]:
    """What the snapshot's Glance record says once uploaded: a root
    tarball (raw/bare: Glance has no rootfs format) that only container
    hosts boot (``hypervisor_type=lxc``, ``vm_mode=exe``)."""
    existing = glance.API().get(context, image_id)
    properties = dict(existing.get("properties") or {})
    properties.update({"hypervisor_type": "lxc", "vm_mode": "exe",
                       "image_location": "snapshot",
                       "image_state": "available"})
    return {"name": existing.get("name"), "disk_format": "raw",
            "container_format": "bare", "properties": properties}


def upload(context: Any, image_id: str, path: Path) -> None:
    """Stream ``path`` to the Glance image ``image_id`` (created by
    nova's API, still queued)."""
    metadata = snapshot_metadata(context, image_id)
    with open(path, "rb") as data:
        glance.API().update(context, image_id, metadata, data=data,
                            purge_props=False)
