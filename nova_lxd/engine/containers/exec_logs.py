"""Recorded output of commands (LXD's exec ``record-output``).

Kept in the container's directory (``exec-logs/``) so that a rename
moves them and a delete removes them with the rest. Names are LXD's,
``exec_<32 hex>.stdout|stderr``, and checked before any path is built
from them. Each stream is bounded by what ``execute.run`` collects
(``execute.MAX_OUTPUT``, 16 MiB; the rest is dropped), and a container
keeps at most ``MAX_LOGS`` recorded files (older ones are removed first)
so that repeated execs cannot fill the disk.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from nova_lxd.engine import errors, fsutil
from nova_lxd.engine.containers.records import ContainerPaths

DIRECTORY = "exec-logs"
MAX_LOGS = 200
"""Recorded files per container (100 commands' stdout and stderr)."""
_NAME = re.compile(r"^exec_[0-9a-f]{32}\.(stdout|stderr)$")


class ExecLogNotFound(errors.NotFound):
    msg_fmt = "Log file %(file)s of container %(name)s not found."


def _directory(paths: ContainerPaths) -> Path:
    return paths.directory / DIRECTORY


def _path(paths: ContainerPaths, file: str) -> Path:
    if not isinstance(file, str) or not _NAME.match(file):
        raise ExecLogNotFound(name=paths.directory.name, file=file)
    return _directory(paths) / file


def write(paths: ContainerPaths, stdout: bytes, stderr: bytes
          ) -> tuple[str, str]:
    """Record one command's output; the two new file names."""
    directory = _directory(paths)
    fsutil.make_dirs(directory, mode=0o700)
    # 32 hex digits as LXD's uuids, time first so that names sort by age
    # (file times are too coarse for that).
    stem = f"exec_{time.time_ns():016x}{secrets.token_hex(8)}"
    names = (f"{stem}.stdout", f"{stem}.stderr")
    for file, data in zip(names, (stdout, stderr), strict=True):
        fsutil.write_atomic(directory / file, data, mode=0o600)
    for old in list_files(paths)[:-MAX_LOGS]:
        (directory / old).unlink(missing_ok=True)
    return names


def list_files(paths: ContainerPaths) -> list[str]:
    """Recorded files, oldest first."""
    directory = _directory(paths)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if _NAME.match(p.name))


def read(paths: ContainerPaths, file: str) -> bytes:
    try:
        return _path(paths, file).read_bytes()
    except FileNotFoundError:
        raise ExecLogNotFound(name=paths.directory.name, file=file) from None


def delete(paths: ContainerPaths, file: str) -> None:
    try:
        _path(paths, file).unlink()
    except FileNotFoundError:
        raise ExecLogNotFound(name=paths.directory.name, file=file) from None
