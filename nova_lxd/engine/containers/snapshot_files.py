"""Files of snapshots: owner shifts for copies, tarballs for exports
and transfers.

With idmapped mounts (the default) a rootfs is owned by container ids
on disk (0-based) and neither is needed; a chown-shifted rootfs is owned
by its container's host range, so a copy into another range is shifted
here, and an export maps owners back to container ids, as images hold
them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from oslo_log import log as logging

from nova_lxd.engine import errors
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.images import mount

LOG = logging.getLogger(__name__)

_CAPS = "security.capability"
_libc = ctypes.CDLL(None, use_errno=True)

TAR = ("tar", "--numeric-owner", "--one-file-system", "--xattrs",
       "--xattrs-include=security.capability", "--sparse")
ZSTD = ("zstd", "-T0", "-q", "-c")
_CHUNK = 1024 * 1024


def disk_base(record: ContainerRecord) -> tuple[int, int]:
    """The host ids that container root has on disk (0 when the rootfs
    is idmap-mounted or the container privileged)."""
    if record.idmap is None or record.idmapped_mount:
        return 0, 0
    return record.idmap.uid_base, record.idmap.gid_base


def syncfs(path: Path) -> None:
    """Write back the file system holding ``path`` (before a freeze, so
    that the frozen window does not pay for earlier writes)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            LOG.debug("syncfs(%s) failed: errno %d", path, ctypes.get_errno())
    finally:
        os.close(fd)


def shift_tree(root: Path, *, uid_from: int, uid_to: int, gid_from: int,
               gid_to: int, size: int) -> int:
    """Move owners in ``[from, from + size)`` to the same offset from
    ``to``, never following symlinks; set-id bits and file capabilities,
    which chown clears, are put back. Returns the entries changed."""
    changed = 0

    def one(path: str, st: os.stat_result) -> None:
        nonlocal changed
        uid, gid = st.st_uid, st.st_gid
        if uid_from <= uid < uid_from + size:
            uid += uid_to - uid_from
        if gid_from <= gid < gid_from + size:
            gid += gid_to - gid_from
        if (uid, gid) == (st.st_uid, st.st_gid):
            return
        caps = None
        if stat.S_ISREG(st.st_mode):
            with contextlib.suppress(OSError):
                caps = os.getxattr(path, _CAPS, follow_symlinks=False)
        os.lchown(path, uid, gid)
        if not stat.S_ISLNK(st.st_mode):
            if caps is not None:
                os.setxattr(path, _CAPS, caps, follow_symlinks=False)
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(st.st_mode))
        changed += 1

    one(str(root), os.lstat(root))
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                one(entry.path, st)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return changed


def archive(root: Path, out: Path, *, label: str, uid_base: int = 0,
            gid_base: int = 0, size: int = 0) -> None:
    """``tar -C root . | zstd -T0 > out``, streamed; owners in the host
    range at ``uid_base``/``gid_base`` (``size`` ids) are written as the
    container's ids. ``label`` names the snapshot in errors."""
    out_fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                     | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        _tar_zstd(root, label, uid_base, gid_base, size, out_fd, None)
    finally:
        os.close(out_fd)


def stream_archive(root: Path, sink: Callable[[bytes], None], *,
                   label: str, uid_base: int = 0, gid_base: int = 0,
                   size: int = 0) -> None:
    """As ``archive``, the compressed bytes handed to ``sink`` as they
    come (a transfer to another host)."""
    _tar_zstd(root, label, uid_base, gid_base, size, subprocess.PIPE, sink)


def stream_compressed(argv: list[str], sink: Callable[[bytes], None],
                      label: str) -> None:
    """``argv | zstd``, the compressed bytes handed to ``sink`` (a
    ``btrfs send`` stream)."""
    _pipe(argv, subprocess.PIPE, sink, label)


def _tar_zstd(root: Path, label: str, uid_base: int, gid_base: int,
              size: int, stdout: int,
              sink: Callable[[bytes], None] | None) -> None:
    with tempfile.TemporaryDirectory(prefix="owner-maps-") as maps:
        extra: list[str] = []
        if size and (uid_base or gid_base):
            for kind, base in (("owner", uid_base), ("group", gid_base)):
                path = Path(maps) / kind
                path.write_text("".join(f"+{base + i} +{i}\n"
                                        for i in range(size)))
                extra.append(f"--{kind}-map={path}")
        _pipe([*TAR, *extra, "-C", str(root), "-cf", "-", "."], stdout,
              sink, label)


def _pipe(tar_argv: list[str], stdout: int,
          sink: Callable[[bytes], None] | None, source: str) -> None:
    errs = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            tar_argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=errs[0], cwd="/", preexec_fn=mount.set_death_signal))
        procs.append(subprocess.Popen(
            ZSTD, stdin=procs[0].stdout, stdout=stdout, stderr=errs[1],
            cwd="/", preexec_fn=mount.set_death_signal))
        procs[0].stdout.close()
        if sink is not None:
            while chunk := procs[1].stdout.read(_CHUNK):
                sink(chunk)
            procs[1].stdout.close()
        status = [p.wait() for p in procs]
    except BaseException:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        raise
    if status != [0, 0]:
        said = []
        for f in errs:
            f.seek(0)
            said.append(f.read()[-2048:].decode("utf-8", "replace").strip())
        raise errors.OperationFailed(
            action="archive the files of", name=source,
            reason=f"{tar_argv[0]} exit {status[0]} ({said[0]}), zstd "
                   f"exit "
                   f"{status[1]} ({said[1]})")
    for f in errs:
        f.close()
