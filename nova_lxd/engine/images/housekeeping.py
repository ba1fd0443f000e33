"""Keep the image store within a size: least recently used images go first.

An image a container uses is never removed: its fingerprint is in
``in_use``, which the caller builds from the container records (a
rebuild or a snapshot restore may want the image again). Images are
ordered by ``last_used_at`` (set at import, refreshed by
``ImageStore.touch`` at each container create), oldest first.

``ImageStore.total_size`` and ``ImageStore.evict`` call these; they read
the store through its public methods only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from oslo_log import log as logging

from nova_lxd.engine import errors

if TYPE_CHECKING:
    from nova_lxd.engine.images.store import Image, ImageStore

LOG = logging.getLogger(__name__)


def total_size(store: ImageStore) -> int:
    """Bytes of the stored tarballs."""
    return sum(image.size for image in store.list())


def evict(store: ImageStore, max_bytes: int, *,
          in_use: set[str]) -> list[Image]:
    """Delete unused images, least recently used first, until the store
    holds at most ``max_bytes``; return those deleted, in order."""
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
    images = sorted(store.list(), key=lambda i: (i.last_used_at,
                                                  i.created_at,
                                                  i.fingerprint))
    total = sum(i.size for i in images)
    removed: list[Image] = []
    now = time.time()
    for image in images:
        if total <= max_bytes:
            break
        if image.fingerprint in in_use:
            continue
        try:
            store.delete(image.fingerprint)
        except errors.ImageNotFound:
            continue  # deleted meanwhile by someone else
        total -= image.size
        removed.append(image)
        LOG.info("Evicted image %s (%d bytes, imported %s ago, last used "
                 "%s ago) to bring the store under %d bytes",
                 image.fingerprint[:12], image.size,
                 _age(now - image.created_at),
                 _age(now - image.last_used_at), max_bytes)
    if total > max_bytes:
        LOG.warning("The image store holds %d bytes, above its limit of %d: "
                    "the rest is used by containers", total, max_bytes)
    return removed


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
