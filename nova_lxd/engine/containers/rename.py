"""Renaming a stopped container: everything that carries its name moves.

The name is the container's directory (record, lxc config and the
console/lxc logs, snapshot metadata and CRIU state), its pool volume and
snapshots (``StoragePool.rename_volume``), its lock file, and the paths
inside its lxc config (rendered again). Steps, each safe to repeat:

1. the record, still in the old directory, says ``renaming`` to the new
   name (an intent recovery can act on);
2. the pool volume moves (dir pool: the whole ``<name>/`` directory);
3. the container directory moves, if the pool did not move it already;
4. the lxc config is rendered for the new paths and the record saved
   under the new name, ``ready``.

A failure undoes the steps in reverse order; after a crash, ``recover``
undoes a rename whose directory had not moved yet and finishes one whose
directory had (see ``recover_rename``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from oslo_log import log as logging

from nova_lxd.engine import errors, limits, names
from nova_lxd.engine.containers import records
from nova_lxd.engine.containers.records import ContainerRecord

if TYPE_CHECKING:
    from nova_lxd.engine.containers.manager import ContainerManager

LOG = logging.getLogger(__name__)

crash_hook: Callable[[str], None] | None = None
"""Tests set this to kill the process at a named point of a rename
(``marked``, ``volume-moved``, ``directory-moved``)."""


def _point(name: str) -> None:
    if crash_hook is not None:
        crash_hook(name)


def rename(manager: ContainerManager, old: str, new: str) -> ContainerRecord:
    """Rename the stopped, unrescued container ``old`` to ``new``."""
    names.validate_container_name(old)
    names.validate_container_name(new)
    if old == new:
        raise errors.ContainerExists(name=new)
    old_lock = manager.lock(old)
    with old_lock, manager.claim(new) as (_new_lock, revert):
        record = manager._load_or_forget(old, old_lock)
        if record.phase != records.READY:
            raise errors.ContainerNotFound(name=old)
        manager._require_stopped(old, "rename")
        if record.rescue_image:
            raise errors.InvalidState(action="rename", name=old,
                                      status="rescued (unrescue it first)")
        LOG.info("Renaming container %s to %s", old, new)
        manager.records.save(record.replace(phase=records.RENAMING,
                                            renaming_to=new))
        revert.add(lambda: manager.records.save(record))
        revert.add(lambda: manager.pool.rename_volume(new, old))
        _point("marked")
        manager.pool.rename_volume(old, new)
        revert.add(lambda: _move_directory(manager, new, old))
        _point("volume-moved")
        _move_directory(manager, old, new)
        _point("directory-moved")
        done = _finish(manager, record, new)
        revert.success()
        old_lock.unlink_on_release = True
    LOG.info("Renamed container %s to %s", old, new)
    return done


def _move_directory(manager: ContainerManager, src: str, dst: str) -> None:
    """Move the container directory unless it moved already (the dir
    pool's volume rename moves it) or is gone (moved back)."""
    source = manager.records.paths(src).directory
    target = manager.records.paths(dst).directory
    if source.exists() and not target.exists():
        os.rename(source, target)


def _finish(manager: ContainerManager, record: ContainerRecord,
            new: str) -> ContainerRecord:
    """Step 4: config and record under the new name."""
    done = record.replace(name=new, phase=records.READY, renaming_to=None)
    manager._write_lxc_config(done, limits.parse_limits(done.limits))
    manager.records.save(done)
    return done


def recover_rename(manager: ContainerManager, directory: str,
                   record: ContainerRecord) -> str:
    """Settle a rename whose process died (the caller holds the lock of
    ``directory``): undone while the directory still has the old name,
    finished once it has the new one. Returns what was done, for the
    log."""
    new = record.renaming_to or ""
    if directory == record.name:
        manager.pool.rename_volume(new, record.name)
        manager.records.save(record.replace(phase=records.READY,
                                            renaming_to=None))
        return f"{record.name} (rename to {new} undone)"
    manager.pool.rename_volume(record.name, new)
    # Not opened with liblxc before the config is rendered again: liblxc
    # would make the old log directory. It cannot be running: the
    # rename held its lock from the stopped check on.
    _finish(manager, record, new)
    old_lock = manager.lock(record.name)
    if old_lock.acquire(blocking=False):
        old_lock.release(unlink=True)
    return f"{new} (rename from {record.name} finished)"
