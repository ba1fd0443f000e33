"""The image cache stays under its cap, least recently used first, and
never loses an image a container uses."""

from __future__ import annotations

import time

from nova_lxd.testing.busybox import build_busybox_tarball


def test_prune_keeps_used_and_recent_images(engine, tmp_path):
    images = []
    for i, kind in enumerate(("gz", "xz", "zst", "none")):
        suffix = ".tar" if kind == "none" else f".tar.{kind}"
        path = build_busybox_tarball(tmp_path / f"bb{i}{suffix}", kind)
        images.append(engine.import_image(path, aliases=(f"img{i}",)))
        time.sleep(0.01)
    engine.create("user", "img0")  # the oldest, but in use
    engine.images.touch(images[1].fingerprint)  # recently used
    biggest = max(i.size for i in images)
    removed = engine.prune_images(max_bytes=images[0].size + biggest + 1)
    gone = {i.fingerprint for i in removed}
    assert images[0].fingerprint not in gone
    left = {i.fingerprint for i in engine.list_images()}
    assert images[0].fingerprint in left
    assert gone and not gone & left
    # The least recently used unused images went first.
    assert images[2].fingerprint in gone
    assert sum(i.size for i in engine.list_images()) <= (
        images[0].size + biggest + 1)
    # A cap of 0 turns pruning off.
    assert engine.prune_images(max_bytes=0) == []
