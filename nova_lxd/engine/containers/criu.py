"""Checkpoint and restore of running processes (CRIU), through liblxc.

The python binding has no checkpoint call, so the engine runs liblxc's
own ``lxc-checkpoint`` tool, which drives CRIU through liblxc's migrate
API. CRIU only works where ``criu check`` passes (Debian 12's criu 3.17
fails it on recent kernels: "vdso: Unexpected rt vDSO area bounds"), so
the engine probes once per process and refuses stateful operations
elsewhere with criu's own words (``StatefulSnapshotUnsupported``).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

from oslo_log import log as logging

from nova_lxd.engine import errors

LOG = logging.getLogger(__name__)

CRIU = "criu"
LXC_CHECKPOINT = "lxc-checkpoint"
_TIMEOUT = 60.0

_lock = threading.Lock()
_probed: dict[tuple[str, str], str | None] = {}


def problem(criu: str = CRIU, lxc_checkpoint: str = LXC_CHECKPOINT
            ) -> str | None:
    """Why CRIU cannot checkpoint containers on this host, or None when
    it can; the probe runs once per process."""
    key = (criu, lxc_checkpoint)
    with _lock:
        if key not in _probed:
            _probed[key] = _probe(criu, lxc_checkpoint)
            if _probed[key]:
                LOG.info("Stateful snapshots unavailable: %s", _probed[key])
        return _probed[key]


def forget() -> None:
    """Probe again next time (after installing another CRIU)."""
    with _lock:
        _probed.clear()


def _probe(criu: str, lxc_checkpoint: str) -> str | None:
    if not shutil.which(lxc_checkpoint):
        return (f"{lxc_checkpoint} is missing (Debian package lxc) and the "
                f"python binding has no checkpoint call")
    if not shutil.which(criu):
        return f"{criu} is not installed (Debian package criu)"
    try:
        result = subprocess.run([criu, "check"], capture_output=True,
                                text=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"'{criu} check' could not run: {exc}"
    if result.returncode == 0:
        return None
    return f"'{criu} check' fails on this host: {_criu_says(result)}"


def _criu_says(result: subprocess.CompletedProcess) -> str:
    """criu's own complaint: its error lines, the most telling first."""
    lines = [line.strip() for line in
             (result.stderr + "\n" + result.stdout).splitlines()
             if line.strip()]
    errs = [line for line in lines if line.startswith("Error")
            and "exited, status" not in line]
    chosen = errs[:3] or lines[-3:] or [f"exit status {result.returncode}"]
    return "; ".join(chosen)


def require(name: str) -> None:
    reason = problem()
    if reason:
        raise errors.StatefulSnapshotUnsupported(name=name, reason=reason)


def checkpoint(name: str, lxcpath: Path, directory: Path, *,
               stop: bool) -> None:
    """Dump the processes of a running container into ``directory``;
    ``stop`` leaves it stopped (the rootfs is then consistent with the
    dump)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _run(name, [LXC_CHECKPOINT, "-n", name, "-P", str(lxcpath), "-D",
                str(directory)] + (["-s"] if stop else []), "checkpoint")


def restore(name: str, lxcpath: Path, directory: Path) -> None:
    """Start a stopped container from the dump in ``directory``."""
    _run(name, [LXC_CHECKPOINT, "-r", "-d", "-n", name, "-P", str(lxcpath),
                "-D", str(directory)], "restore processes of")


def _run(name: str, argv: list[str], action: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True,
                                timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.OperationFailed(action=action, name=name,
                                     reason=str(exc)) from exc
    if result.returncode != 0:
        raise errors.OperationFailed(
            action=action, name=name,
            reason=f"{argv[0]} failed: {_criu_says(result)}")
