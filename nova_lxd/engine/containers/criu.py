"""Checkpoint and restore of running processes (CRIU), through liblxc.

The python binding has no checkpoint call, so the engine runs liblxc's
own ``lxc-checkpoint`` tool, which drives CRIU through liblxc's migrate
API. CRIU only works where ``criu check`` passes (Debian 12's criu 3.17
fails it on recent kernels: "vdso: Unexpected rt vDSO area bounds"), so
the engine probes once per process and refuses stateful operations
elsewhere with criu's own words (``StatefulSnapshotUnsupported``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from oslo_log import log as logging

from nova_lxd.engine import errors

LOG = logging.getLogger(__name__)

CRIU = "criu"
LXC_CHECKPOINT = "lxc-checkpoint"
_TIMEOUT = 60.0
RESTORE_ATTEMPTS = 3

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
    if result.returncode != 0:
        return f"'{criu} check' fails on this host: {_criu_says(result)}"
    if not shutil.which("iptables-restore"):
        return ("iptables-restore is missing (Debian package iptables): "
                "CRIU locks a container's network with it while dumping")
    return _trial_dump(criu)


def _trial_dump(criu: str) -> str | None:
    """Dump a throwaway process and let it run on: where ``criu check``
    passes but dumping fails (kernel or seccomp quirks), say so now
    rather than in the middle of a move."""
    proc = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with tempfile.TemporaryDirectory(prefix="criu-trial-") as images:
            result = subprocess.run(
                [criu, "dump", "-t", str(proc.pid), "-D", images,
                 "--leave-running", "--shell-job", "-o", "dump.log"],
                capture_output=True, text=True, timeout=_TIMEOUT,
                check=False)
            if result.returncode != 0:
                log = Path(images, "dump.log")
                said = _criu_says(subprocess.CompletedProcess(
                    result.args, result.returncode,
                    log.read_text(errors="replace") if log.exists()
                    else result.stderr, ""))
                return f"a trial dump with {criu} fails: {said}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"a trial dump with {criu} could not run: {exc}"
    finally:
        proc.kill()
        proc.wait()
    return None


def _criu_says(result: subprocess.CompletedProcess) -> str:
    """criu's own complaint: its error lines, the most telling first."""
    lines = [line.strip() for line in
             (result.stderr + "\n" + result.stdout).splitlines()
             if line.strip()]
    # Errors of restored tasks are prefixed with their pid ("1: Error");
    # the rlimit line is noise of every unprivileged-namespace run.
    errs = [line for line in lines if "Error (" in line
            and "exited, status" not in line
            and "RLIMIT_NOFILE" not in line]
    chosen = errs[:3] or lines[-3:] or [f"exit status {result.returncode}"]
    return "; ".join(chosen)


def require(name: str, stateful: bool = True) -> None:
    """Refuse stateful work on ``name``, saying why: a CRIU that does
    not work here, or a container not made for it (``stateful``)."""
    reason = problem()
    if not reason and not stateful:
        reason = (f"{name} was not created stateful (its console device "
                  f"cannot be restored by liblxc): create it with "
                  f"stateful=True (LXD: migration.stateful)")
    if reason:
        raise errors.StatefulSnapshotUnsupported(name=name, reason=reason)


def checkpoint(name: str, lxcpath: Path, directory: Path, *,
               stop: bool) -> None:
    """Dump the processes of a running container into ``directory``;
    ``stop`` leaves it stopped (the rootfs is then consistent with the
    dump)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _run(name, [LXC_CHECKPOINT, "-n", name, "-P", str(lxcpath), "-D",
                str(directory)] + (["-s"] if stop else []), "checkpoint",
         directory / "dump.log")


def restore(name: str, lxcpath: Path, directory: Path,
            owner: tuple[int, int] = (0, 0)) -> None:
    """Start a stopped container from the dump in ``directory``; CRIU's
    restored tasks read it as the container's root (``owner``, host
    ids), so it becomes theirs (mode 0700: nobody else's)."""
    for path in (directory, *directory.rglob("*")):
        os.lchown(path, *owner)
    # -d: the restored container's monitor outlives lxc-checkpoint and
    # keeps its stdout and stderr: files, never pipes we would wait on.
    argv = [LXC_CHECKPOINT, "-r", "-d", "-n", name, "-P", str(lxcpath),
            "-D", str(directory)]
    for attempt in range(1, RESTORE_ATTEMPTS + 1):
        try:
            _run(name, argv, "restore processes of",
                 directory / "restore.log")
            return
        except errors.OperationFailed as exc:
            # CRIU 4.1 sometimes opens an image from a restored task
            # before its user namespace has ids (EACCES); it works again.
            if attempt == RESTORE_ATTEMPTS or "Permission denied" not in \
                    str(exc):
                raise
            LOG.warning("Restore of %s raced CRIU (%s); trying again",
                        name, exc)
            time.sleep(0.1 * attempt)


def _run(name: str, argv: list[str], action: str, log: Path) -> None:
    try:
        with tempfile.TemporaryFile() as out:
            code = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=out,
                                  timeout=_TIMEOUT, check=False).returncode
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.OperationFailed(action=action, name=name,
                                     reason=str(exc)) from exc
    result = subprocess.CompletedProcess(argv, code, "", text)
    if result.returncode != 0:
        # liblxc keeps CRIU's own words in the dump directory's log.
        said = _criu_says(result)
        with contextlib.suppress(OSError):
            said = _criu_says(subprocess.CompletedProcess(
                argv, result.returncode, log.read_text(errors="replace"),
                "")) + f" ({argv[0]}: {said})"
        raise errors.OperationFailed(
            action=action, name=name, reason=f"CRIU failed: {said}")
