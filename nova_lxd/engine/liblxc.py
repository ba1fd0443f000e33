"""The only module that talks to liblxc.

Everything else in the engine calls these functions, so the binding's
quirks are handled once:

- Starting goes through the ``lxc-start`` tool, exec'd: the binding's
  ``start()`` makes the container's monitor a fork of the calling (large)
  Python process and moves the caller into the container's monitor cgroup,
  where it stays (one leaked cgroup per start).
- ``attach`` runs commands with our own pipes and a waitable pid, so that
  a command can time out.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import lxc
from oslo_log import log as logging

from nova_lxd.engine import errors

LOG = logging.getLogger(__name__)

# liblxc's states, as ``Container.state`` reports them.
RUNNING = "RUNNING"
STOPPED = "STOPPED"
FROZEN = "FROZEN"
STARTING = "STARTING"
STOPPING = "STOPPING"
FREEZING = "FREEZING"
THAWED = "THAWED"
ABORTING = "ABORTING"

_ERROR_MARKERS = (" ERROR ", " CRIT ", " FATAL ", " ALERT ")


def version() -> str:
    return lxc.version


def open_container(name: str, lxcpath: Path) -> lxc.Container:
    return lxc.Container(name, str(lxcpath))


def state(ct: lxc.Container) -> str:
    return ct.state if ct.defined else STOPPED


def init_pid(ct: lxc.Container) -> int | None:
    pid = ct.init_pid
    return pid if pid and pid > 0 else None


def start(name: str, lxcpath: Path, *, lxc_start: str, log_file: Path,
          timeout: float = 60.0) -> None:
    """Start a container through ``lxc-start -d``, which returns once it
    is RUNNING; on failure raise StartFailed with liblxc's error lines."""
    offset = log_file.stat().st_size if log_file.exists() else 0
    cmd = [lxc_start, "-n", name, "-P", str(lxcpath), "-d"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise errors.HostError(
            reason=f"{lxc_start} not found: install Debian's lxc package "
                   f"(tools/setup.sh does)") from exc
    except subprocess.TimeoutExpired as exc:
        raise errors.StartFailed(
            name=name, reason=f"lxc-start did not return in {timeout} s"
        ) from exc
    if proc.returncode == 0:
        return
    lines = error_lines(log_file, offset)
    if not lines:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    raise errors.StartFailed(name=name, log_lines=lines[-15:])


def error_lines(log_file: Path, offset: int = 0) -> list[str]:
    """The ERROR (and worse) lines liblxc wrote after ``offset``."""
    try:
        with open(log_file, "rb") as f:
            f.seek(offset)
            text = f.read(1 << 20).decode(errors="replace")
    except FileNotFoundError:
        return []
    return [_strip_log_prefix(ln) for ln in text.splitlines()
            if any(m in ln for m in _ERROR_MARKERS)]


def _strip_log_prefix(line: str) -> str:
    # "lxc-start c1 20261125042340.383 ERROR start - src:fn:1 - message"
    parts = line.split(" - ", 2)
    return parts[-1].strip() if len(parts) == 3 else line.strip()


def shutdown(ct: lxc.Container, timeout: float) -> bool:
    """Send the halt signal and wait up to ``timeout`` for STOPPED.

    Through ``lxc-stop``, exec'd: the binding's shutdown and stop keep
    the interpreter lock while they wait, and a caller whose other thread
    must reap a command attached to the container (the daemon's exec)
    would then deadlock with the kernel's namespace teardown."""
    seconds = max(1, int(round(timeout)))
    return _lxc_stop(ct, "--nokill", "-t", str(seconds),
                     timeout=seconds + 30)


def kill(ct: lxc.Container) -> bool:
    return _lxc_stop(ct, "-k", timeout=60)


def _lxc_stop(ct: lxc.Container, *args: str, timeout: float) -> bool:
    cmd = ["lxc-stop", "-n", ct.name, "-P", ct.get_config_path(), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 or state(ct) == STOPPED


def wait(ct: lxc.Container, wanted: str, timeout: float) -> bool:
    return bool(ct.wait(wanted, timeout))


def freeze(ct: lxc.Container) -> bool:
    return bool(ct.freeze())


def unfreeze(ct: lxc.Container) -> bool:
    return bool(ct.unfreeze())


def cgroup_item(ct: lxc.Container, key: str) -> str | None:
    """A cgroup file of a running container, or None when absent."""
    try:
        value = ct.get_cgroup_item(key)
    except (KeyError, ValueError, OSError):
        return None
    return value if value not in ("", None) else None


def interfaces(ct: lxc.Container) -> dict[str, list[str]]:
    """Addresses per interface inside a running container."""
    result: dict[str, list[str]] = {}
    try:
        names = ct.get_interfaces() or ()
    except (KeyError, ValueError, OSError):
        return result
    for iface in names:
        try:
            result[iface] = list(ct.get_ips(interface=iface) or ())
        except (KeyError, ValueError, OSError):
            result[iface] = []
    return result


def attach(ct: lxc.Container, argv: list[str], *, env: dict[str, str],
           cwd: str, uid: int, gid: int, stdin: int, stdout: int,
           stderr: int) -> int:
    """Run ``argv`` inside the container; return the pid to wait for.

    The environment is cleared and replaced with ``env`` so that nothing
    of the host's environment leaks into the container.
    """
    extra = [f"{k}={v}" for k, v in env.items()]
    _seal_inherited_fds()
    pid = ct.attach(
        lxc.attach_run_command, argv,
        env_policy=lxc.LXC_ATTACH_CLEAR_ENV, extra_env_vars=extra,
        initial_cwd=cwd, uid=uid, gid=gid,
        stdin=stdin, stdout=stdout, stderr=stderr)
    if pid is None or pid < 0:
        raise errors.OperationFailed(
            action="run a command in", name=ct.name,
            reason="liblxc could not attach to the container")
    return pid


def _seal_inherited_fds() -> None:
    """Mark close-on-exec every descriptor this process inherited (its
    caller's shell or service manager may hand it some): liblxc's attach
    forks from here and the command would keep them, host files and
    pipes inside the container (and CRIU refuses to dump a process
    holding a host mount's file). Python's own are close-on-exec
    already; stdio (0-2) is what attach replaces."""
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)
            except OSError:
                pass  # closed meanwhile (the listing's own fd, too)


def host_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
