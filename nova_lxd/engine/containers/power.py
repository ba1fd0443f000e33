"""Power transitions of an existing container: start, clean stop with a
timeout then kill, restart, freeze and unfreeze.

Callers hold the container's lock; these functions only talk to liblxc
and check that the transition makes sense first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from oslo_log import log as logging

from nova_lxd.engine import errors, liblxc
from nova_lxd.engine.containers import traffic
from nova_lxd.engine.containers.records import ContainerPaths
from nova_lxd.engine.nics import Nic

LOG = logging.getLogger(__name__)

# Shutdown signals are re-sent at this interval until the timeout: an init
# that was still starting up (busybox) can miss the first one.
_RESEND_INTERVAL = 1


def _refuse(action: str, name: str, status: str) -> errors.InvalidState:
    return errors.InvalidState(action=action, name=name,
                               status=status.lower())


def start(name: str, ct: Any, paths: ContainerPaths, *, lxc_start: str,
          lxcpath: Any, nics: Sequence[Nic] = ()) -> None:
    """Start, then limit the traffic of ``nics`` on their new host
    veths; a container whose limits do not take is stopped again
    (TrafficLimitFailed), never left running unlimited."""
    status = liblxc.state(ct)
    if status != liblxc.STOPPED:
        raise _refuse("start", name, status)
    liblxc.start(name, lxcpath, lxc_start=lxc_start,
                 log_file=paths.lxc_log)
    try:
        traffic.apply(name, nics)
    except errors.TrafficLimitFailed as exc:
        LOG.error("%s", exc)
        try:
            _kill(name, ct, clean=False)
        except errors.EngineError as kill_exc:
            LOG.error("Could not stop container %s: %s", name, kill_exc)
        raise
    LOG.info("Started container %s (init pid %s)", name, ct.init_pid)


def stop(name: str, ct: Any, *, timeout: float, force: bool) -> bool:
    """Stop; return True if the container halted cleanly."""
    status = liblxc.state(ct)
    if status == liblxc.STOPPED:
        raise _refuse("stop", name, status)
    if status in (liblxc.FROZEN, liblxc.FREEZING):
        if force:
            return _kill(name, ct, clean=False)
        liblxc.unfreeze(ct)
    if force or timeout <= 0:
        return _kill(name, ct, clean=False)
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        if liblxc.shutdown(ct, min(_RESEND_INTERVAL, remaining)):
            LOG.info("Container %s shut down cleanly", name)
            return True
        if liblxc.state(ct) == liblxc.STOPPED:
            return True
    LOG.warning("Container %s did not shut down in %s s; killing it",
                name, timeout)
    return _kill(name, ct, clean=False)


def _kill(name: str, ct: Any, *, clean: bool) -> bool:
    if not liblxc.kill(ct) and liblxc.state(ct) != liblxc.STOPPED:
        raise errors.OperationFailed(action="stop", name=name,
                                     reason="liblxc could not kill it")
    LOG.info("Container %s killed", name)
    return clean


def freeze(name: str, ct: Any) -> None:
    status = liblxc.state(ct)
    if status != liblxc.RUNNING:
        raise _refuse("freeze", name, status)
    if not liblxc.freeze(ct):
        raise errors.OperationFailed(action="freeze", name=name,
                                     reason="the freezer did not freeze it")


def unfreeze(name: str, ct: Any) -> None:
    status = liblxc.state(ct)
    if status != liblxc.FROZEN:
        raise _refuse("unfreeze", name, status)
    if not liblxc.unfreeze(ct):
        raise errors.OperationFailed(action="unfreeze", name=name,
                                     reason="the freezer did not thaw it")
