"""Live moves: the running container's processes travel with its files.

The sender dumps the processes with CRIU (the container stops, so its
files match the dump), streams files and dump, and keeps the dump until
the receiver has restored them: then ``finish(moved=True)`` drops it
(the caller deletes the stopped source), and on any failure
``finish(moved=False)`` restores the processes here, so the source runs
on as it was. The receiver restores the dump once the stream checked out
and the container is committed; a failed restore removes the container
(the sender is then told, and restores its own).

There is one dump, no iterative pre-copy: pre-dumps need the kernel's
soft-dirty memory tracking, which this host's kernel lacks (CRIU's
``check --all``: "Dirty tracking is OFF"). The downtime is dump,
transfer and restore.

CRIU restores the dumped user namespace, with its id map: the receiver
gives the container the same host id range, or refuses when that range
is another container's there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from oslo_log import log as logging

from nova_lxd.engine import errors, fsutil, liblxc
from nova_lxd.engine.containers import criu
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.idmap import Idmap
from nova_lxd.engine.transfer.stream import TransferCorrupt

if TYPE_CHECKING:
    from nova_lxd.engine.containers.manager import ContainerManager

LOG = logging.getLogger(__name__)
DUMP_DIR = "live-dump"


class LiveMoveRefused(errors.InvalidInput):
    msg_fmt = ("Cannot move %(name)s live: %(reason)s. Nothing was "
               "changed; a move without live works.")


def dump_dir(manager: ContainerManager, name: str) -> Path:
    return manager.records.paths(name).directory / DUMP_DIR


def problem(manager: ContainerManager, name: str) -> str | None:
    """Why ``name`` cannot move live from here (None: it can)."""
    record = manager.get(name)
    status = liblxc.state(manager.open(name))
    if status != liblxc.RUNNING:
        return f"{name} is {status.lower()}: move it without live"
    try:
        criu.require(name, record.stateful)
    except errors.StatefulSnapshotUnsupported as exc:
        return exc.kwargs.get("reason") or str(exc)
    return None


def dump(manager: ContainerManager, record: ContainerRecord) -> Path:
    """Dump the processes of the running ``record`` (it stops); lock
    held by the caller."""
    reason = problem(manager, record.name)
    if reason:
        raise LiveMoveRefused(name=record.name, reason=reason)
    state = dump_dir(manager, record.name)
    fsutil.remove_tree(state)
    criu.checkpoint(record.name, manager.config.containers_dir, state,
                    stop=True)
    return state


def finish(manager: ContainerManager, name: str, *, moved: bool) -> None:
    """After a live send: drop the dump (moved), or restore the
    processes from it (the move failed)."""
    with manager.locked(name) as record:
        state = dump_dir(manager, name)
        if not state.is_dir():
            return
        if not moved and liblxc.state(manager.open(name)) == \
                liblxc.STOPPED:
            LOG.warning("Live move of %s failed: restoring its processes "
                        "here", name)
            criu.restore(name, manager.config.containers_dir, state,
                         record.host_root)
        fsutil.remove_tree(state)


def wanted_idmap(manifest: dict[str, Any]) -> Idmap | None:
    """The id range a live stream's container must keep."""
    data = manifest.get("idmap")
    if data is None:
        return None
    try:
        return Idmap(**data)
    except (TypeError, errors.InvalidInput):
        raise TransferCorrupt(reason="its id map is not one") from None


def restore(manager: ContainerManager, record: ContainerRecord) -> None:
    """Restore a received dump into the committed ``record``; on failure
    the container goes and the error says why."""
    state = dump_dir(manager, record.name)
    try:
        criu.restore(record.name, manager.config.containers_dir, state,
                     record.host_root)
    except errors.EngineError:
        manager.delete(record.name, force=True)
        raise
    finally:
        fsutil.remove_tree(state)
