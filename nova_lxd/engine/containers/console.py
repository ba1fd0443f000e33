"""The container's /dev/console: its log and attaching to it.

The log is what init and services wrote to /dev/console, captured by
liblxc in ``console.log`` and rotated by it into ``console.log.1`` once
``lxc.console.size`` is reached.

Attaching goes through the ``lxc-console`` tool on the caller's pty (as
LXD's ``forkconsole`` does): the binding's ``console_getfd`` drops the
command socket that holds the console, so the console would stay taken
until the daemon exits. The container's monitor proxies the console to
the tool and keeps writing the log meanwhile; one attachment at a time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nova_lxd.engine import errors, liblxc


def read_console_log(log: Path, max_bytes: int = 1024 * 1024) -> str:
    """The newest ``max_bytes`` of the log, across the rotated file."""
    chunks: list[bytes] = []
    remaining = max_bytes
    for path in (log, log.with_name(log.name + ".1")):
        if remaining <= 0:
            break
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - remaining))
                data = f.read(remaining)
        except FileNotFoundError:
            continue
        chunks.insert(0, data)
        remaining -= len(data)
    return b"".join(chunks).decode("utf-8", errors="replace")


def clear_console_log(log: Path) -> None:
    """Empty the log in place (liblxc appends to the file it holds
    open) and drop the rotated one."""
    try:
        os.truncate(log, 0)
    except FileNotFoundError:
        pass
    log.with_name(log.name + ".1").unlink(missing_ok=True)


def console_tool(lxc_start: str) -> str:
    """``lxc-console`` next to the configured ``lxc-start``."""
    if "/" in lxc_start:
        return str(Path(lxc_start).with_name("lxc-console"))
    return "lxc-console"


def attach(name: str, ct: Any, *, lxcpath: Path, tool: str, stdin: int,
           stdout: int, stderr: int) -> int:
    """Start ``lxc-console`` on tty 0 (/dev/console) with the caller's
    fds; the pid to wait for. Killing it detaches. Ctrl-a is its escape
    key (Ctrl-a q detaches, Ctrl-a Ctrl-a types Ctrl-a), as in lxc."""
    status = liblxc.state(ct)
    if status != liblxc.RUNNING:
        raise errors.InvalidState(action="attach to the console of",
                                  name=name, status=status.lower())
    argv = [tool, "-n", name, "-P", str(lxcpath), "-t", "0", "-q"]
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    try:
        # A session of its own: signals to the daemon's process group
        # (Ctrl-C on its terminal) do not reach the tool.
        return os.posix_spawnp(argv[0], argv, env, setsid=True,
                               file_actions=[
                                   (os.POSIX_SPAWN_DUP2, stdin, 0),
                                   (os.POSIX_SPAWN_DUP2, stdout, 1),
                                   (os.POSIX_SPAWN_DUP2, stderr, 2)])
    except FileNotFoundError as exc:
        raise errors.HostError(
            reason=f"{tool} not found: install Debian's lxc package "
                   f"(tools/setup.sh does)") from exc
