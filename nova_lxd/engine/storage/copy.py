"""Whole-tree copies for the ``dir`` driver (and btrfs fallbacks).

``cp -a`` keeps owners, modes, times, hard links, sparse files, device
nodes and extended attributes as they are (the tree belongs to an id map,
never to the host), and ``--reflink=auto`` makes the copy nearly free on
file systems that share extents (btrfs, xfs). Copies go to a sibling
name first and are renamed into place, so a crash never leaves a
half-copied tree under a real name.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nova_lxd.engine import fsutil
from nova_lxd.engine.images.mount import set_death_signal
from nova_lxd.engine.storage.base import StorageError

PARTIAL = ".partial-"


def copy_tree(source: Path, dest: Path, *, pool: str) -> Path:
    """Copy the directory ``source`` to the new path ``dest``."""
    partial = dest.with_name(PARTIAL + dest.name)
    fsutil.remove_tree(partial)
    partial.mkdir(mode=0o755)
    # The copy of the top directory keeps the source's owner and mode.
    result = subprocess.run(
        ["cp", "-a", "--reflink=auto", "--sparse=always", "--",
         f"{source}/.", str(partial)],
        capture_output=True, text=True, check=False,
        # Dies with us: recovery must not race a copy still running.
        preexec_fn=set_death_signal)
    if result.returncode != 0:
        fsutil.remove_tree(partial)
        raise StorageError(pool=pool, reason=f"copying {source} failed: "
                                             f"{result.stderr.strip()}")
    os.rename(partial, dest)
    return dest


def remove_partials(directory: Path) -> None:
    """Copies a crash interrupted."""
    if directory.is_dir():
        for path in directory.glob(PARTIAL + "*"):
            fsutil.remove_tree(path)
