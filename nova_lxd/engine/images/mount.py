"""Mount an untrusted file system where only one child process sees it.

Who does what::

    caller (engine process)
      |- fork -> mount helper  (PR_SET_PDEATHSIG=SIGKILL: dies with the
      |            |             forking thread, even after a SIGKILL)
      |            |  unshare(CLONE_NEWNS); mount --make-rprivate /
      |            |  loop device: LOOP_CONFIGURE, read-only, AUTOCLEAR,
      |            |               offset/sizelimit of the partition
      |            |  mount -o ro,nosuid,nodev,noexec(+ fs options)
      |            |  fn(mountpoint) -> result (pickled back)
      |            |  (tar and zstd, when archiving, run as its children
      |            |   with their own death signal)
      |            '- umount; exit
      '- reads progress and the result (or the typed error) from a pipe

The host never sees the mount: it exists only in the helper's private
mount namespace. When the helper dies for any reason the kernel tears the
namespace down, which unmounts the file system, and the loop device,
whose only opener is then gone, detaches itself (AUTOCLEAR). The loop
device is read-only, so not even a file system driver that wanted to
replay a journal could write to the image; the options say so too:

=========  ===================================================================
ext2/3/4   mounted by the ext4 driver with ``noload`` (no journal replay)
           and ``errors=continue`` (a superblock asking for errors=panic
           must not panic the host)
xfs        ``norecovery`` (no log replay) and ``nouuid`` (a copy of a mounted
           file system, or the same image converted twice at once, mounts)
btrfs      ``rescue=nologreplay``; single-device file systems only (a
           crafted image could claim a host disk as its second device), no
           seed devices
squashfs   read-only by nature
=========  ===================================================================

The mount helper is forked, not exec'd, so ``fn`` may be any callable (a
closure too); it must return something picklable. A typed engine error
raised by ``fn`` is re-raised in the caller as is.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import stat
import struct
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from oslo_log import log as logging

from nova_lxd.engine import errors
from nova_lxd.engine.images.loop import attach_loop
from nova_lxd.engine.images.partitions import Partition

LOG = logging.getLogger(__name__)

T = TypeVar("T")
Report = Callable[[str, float], None]

INIT_PATHS = ("sbin/init", "usr/sbin/init", "lib/systemd/systemd",
              "usr/lib/systemd/systemd", "bin/init", "usr/bin/init",
              "sbin/openrc-init", "usr/sbin/openrc-init")
OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
ROOT_SUBDIRS = ("@", "@rootfs", "root", "rootfs")
"""Where a root may sit inside a file system whose top holds no init
(btrfs layouts: Ubuntu's ``@``, Fedora's ``root`` subvolume)."""

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
_MNT_DETACH = 2
_PR_SET_PDEATHSIG = 1
_MOUNT_FLAGS = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
# (kernel file system type, option sets to try in turn)
_MOUNT = {
    "ext2": ("ext4", ("noload,errors=continue",)),
    "ext3": ("ext4", ("noload,errors=continue",)),
    "ext4": ("ext4", ("noload,errors=continue",)),
    "xfs": ("xfs", ("norecovery,nouuid",)),
    "btrfs": ("btrfs", ("rescue=nologreplay", "nologreplay")),
    "squashfs": ("squashfs", ("",)),
}
_BTRFS_SUPER = 0x10000
_BTRFS_FLAG_SEEDING = 1 << 32
_FRAME = struct.Struct(">I")
_MAX_FRAME = 64 * 1024 * 1024

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong, ctypes.c_ulong)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def set_death_signal(sig: int = signal.SIGKILL) -> None:
    """Be sent ``sig`` when the thread that forked us dies."""
    _check(_libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl")


# -- the helper process ---------------------------------------------------


class _Channel:
    """Length-prefixed pickles over a pipe, helper to caller."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: tuple) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(_FRAME.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd, view):]


_channel: _Channel | None = None
"""Set in a helper only: where ``report`` sends progress."""


def report(stage: str, fraction: float) -> None:
    """Progress from code running in a helper (``fn`` of
    ``run_in_mounted``), passed to the caller's ``progress``; a no-op
    anywhere else."""
    if _channel is not None:
        _channel.send(("progress", stage, float(fraction)))


def _portable(exc: BaseException) -> BaseException:
    """An exception the caller can unpickle: typed engine errors as they
    are, anything else as an EngineError carrying its traceback."""
    if isinstance(exc, errors.EngineError):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:  # noqa: BLE001 - fall back to the message
            return errors.EngineError(str(exc))
    return errors.EngineError(
        f"The image mount helper failed: {type(exc).__name__}: {exc}\n"
        + "".join(traceback.format_exception(exc))[-4000:])


def run_forked(body: Callable[[], T], *,
               progress: Report | None = None) -> T:
    """Run ``body()`` in a forked helper that dies with the calling thread
    and return its result (or raise its error); ``report()`` in the
    helper calls ``progress`` here."""
    global _channel
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the helper: never return into the caller's stack
        status = 70
        try:
            os.close(read_fd)
            set_death_signal()
            if os.getppid() != parent:
                os._exit(status)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            _channel = _Channel(write_fd)
            try:
                message: tuple = ("result", body())
            except BaseException as exc:  # noqa: BLE001 - sent to caller
                message = ("error", _portable(exc))
            try:
                _channel.send(message)
            except Exception as exc:  # noqa: BLE001 - unpicklable result
                _channel.send(("error", _portable(exc)))
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    outcome = None
    try:
        outcome = _receive(read_fd, progress)
    finally:
        os.close(read_fd)
        if outcome is None:
            # Interrupted, or the helper died: make sure it is gone.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if outcome is None:
        raise errors.EngineError(
            f"The image mount helper died "
            f"({_describe_status(status)}) before it answered.")
    kind, value = outcome
    if kind == "error":
        raise value
    return value


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def _receive(fd: int, progress: Report | None) -> tuple | None:
    buffer = b""
    while True:
        while len(buffer) >= _FRAME.size:
            length, = _FRAME.unpack_from(buffer)
            if length > _MAX_FRAME:
                raise errors.EngineError("The image mount helper sent an "
                                         "oversized message.")
            if len(buffer) < _FRAME.size + length:
                break
            message = pickle.loads(buffer[_FRAME.size:_FRAME.size + length])
            buffer = buffer[_FRAME.size + length:]
            if message[0] == "progress":
                if progress is not None:
                    progress(message[1], message[2])
            else:
                return message[0], message[1]
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        buffer += chunk


def enter_private_namespace() -> None:
    """A mount namespace of our own that shares nothing with the host."""
    _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None),
           "make / rprivate")


# -- mounting (in the helper) ---------------------------------------------


def check_mountable(raw_path: Path, partition: Partition,
                    source: str) -> None:
    """Refuse what must not reach the kernel's mount."""
    if not partition.mountable:
        raise errors.InvalidImage(
            source=source, reason=f"{partition.describe()} holds no file "
            f"system a root can be read from")
    if partition.fs == "btrfs":
        with open(raw_path, "rb") as f:
            f.seek(partition.start_bytes + _BTRFS_SUPER)
            sb = f.read(0x90)
        flags, = struct.unpack_from("<Q", sb, 0x38)
        devices, = struct.unpack_from("<Q", sb, 0x88)
        if devices != 1 or flags & _BTRFS_FLAG_SEEDING:
            seed = " (a seed device)" if flags & _BTRFS_FLAG_SEEDING else ""
            raise errors.UnsafeImage(
                source=source, reason=f"the btrfs on {partition.name} spans "
                f"{devices} devices{seed}; only single-device btrfs images "
                f"are accepted")


@contextlib.contextmanager
def mounted(raw_path: Path, partition: Partition, mountpoint: Path,
            source: str) -> Iterator[Path]:
    """Mount ``partition`` on ``mountpoint`` read-only (in the helper,
    inside its private namespace), unmounted on exit."""
    check_mountable(raw_path, partition, source)
    fstype, option_sets = _MOUNT[partition.fs]
    try:
        loop_fd, device = attach_loop(raw_path, partition.start_bytes,
                                      partition.size_bytes)
    except OSError as exc:
        raise errors.HostError(reason=f"no loop device for {source}: {exc}")
    try:
        failure: OSError | None = None
        for options in option_sets:
            result = _libc.mount(device.encode(), os.fsencode(mountpoint),
                                 fstype.encode(), _MOUNT_FLAGS,
                                 options.encode() or None)
            if result == 0:
                failure = None
                break
            err = ctypes.get_errno()
            failure = OSError(err, os.strerror(err))
        if failure is not None:
            raise errors.InvalidImage(
                source=source, reason=f"cannot mount {partition.describe()}"
                f": {failure.strerror}")
    finally:
        os.close(loop_fd)
    try:
        yield mountpoint
    finally:
        if _libc.umount2(os.fsencode(mountpoint), 0) != 0:
            _libc.umount2(os.fsencode(mountpoint), _MNT_DETACH)


def run_in_mounted(raw_path: Path, partition: Partition,
                   fn: Callable[[Path], T], *, workdir: Path,
                   progress: Report | None = None,
                   source: str | None = None) -> T:
    """Mount ``partition`` of ``raw_path`` in the private mount namespace
    of a forked helper and return ``fn(mountpoint)`` from there (it must
    be picklable); ``fn`` may call ``report(stage, fraction)`` to reach
    ``progress``. The mount point is a fresh directory in ``workdir``
    (empty on the host)."""
    raw_path = Path(raw_path)
    source = source or str(raw_path)
    mountpoint = Path(tempfile.mkdtemp(prefix=".mnt-", dir=workdir))

    def body() -> T:
        enter_private_namespace()
        with mounted(raw_path, partition, mountpoint, source):
            return fn(mountpoint)

    try:
        return run_forked(body, progress=progress)
    finally:
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def probe_all(raw_path: Path, partitions: Sequence[Partition], *,
              workdir: Path, source: str | None = None
              ) -> list[dict[str, Any]]:
    """Mount each partition in turn (one helper) and report what it
    holds: ``{"init", "os_release", "subdir"}`` or ``{"error"}``."""
    raw_path = Path(raw_path)
    source = source or str(raw_path)
    mountpoint = Path(tempfile.mkdtemp(prefix=".mnt-", dir=workdir))

    def body() -> list[dict[str, Any]]:
        enter_private_namespace()
        results = []
        for partition in partitions:
            try:
                with mounted(raw_path, partition, mountpoint, source):
                    results.append(find_root(mountpoint))
            except errors.EngineError as exc:
                results.append({"error": exc.message})
        return results

    try:
        return run_forked(body)
    finally:
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


# -- what a file system holds ---------------------------------------------


def resolve_in_root(root: Path, relpath: str, *,
                    max_links: int = 40) -> str | None:
    """``relpath`` resolved as if ``root`` were ``/`` (absolute links and
    ``..`` stay inside), never following a link out to the host; returns
    the resolved path relative to ``root``, or None if it does not
    exist."""
    root = os.fspath(root)
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    current: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if current:
                current.pop()
            continue
        path = os.path.join(root, *current, part)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > max_links:
                return None
            try:
                target = os.readlink(path)
            except OSError:
                return None
            if target.startswith("/"):
                current = []
            parts = [p for p in target.split("/")
                     if p not in ("", ".")] + parts
            continue
        if parts and not stat.S_ISDIR(st.st_mode):
            return None
        current.append(part)
    return "/".join(current)


def _regular(root: Path, rel: str | None, executable: bool) -> bool:
    if rel is None or rel == "":
        return False
    try:
        st = os.lstat(os.path.join(root, rel))
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (
        not executable or bool(st.st_mode & 0o111))


def _first(root: Path, candidates: Sequence[str],
           executable: bool) -> tuple[str, str] | None:
    for path in candidates:
        target = resolve_in_root(root, path)
        if _regular(root, target, executable):
            return path, target
    return None


def find_root(mountpoint: Path) -> dict[str, Any]:
    """Where the root is in a mounted file system: its ``subdir`` ("" for
    the top), its ``init`` and ``os_release`` (path, resolved target) or
    None, and the used bytes (statvfs)."""
    mountpoint = Path(mountpoint)
    st = os.statvfs(mountpoint)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    best: dict[str, Any] | None = None
    for subdir in ("", *ROOT_SUBDIRS):
        if subdir:
            real = resolve_in_root(mountpoint, subdir)
            if real != subdir or not os.path.isdir(mountpoint / subdir):
                continue
        root = mountpoint / subdir
        found = {"subdir": subdir, "used_bytes": used,
                 "init": _first(root, INIT_PATHS, True),
                 "os_release": _first(root, OS_RELEASE_PATHS, False)}
        if found["init"] and found["os_release"]:
            return found
        if best is None or (found["init"] and not best["init"]):
            best = found
    assert best is not None
    return best


def holds_root(found: dict[str, Any]) -> str:
    """A phrase saying what a ``find_root`` result holds."""
    if "error" in found:
        return f"could not be read ({found['error']})"
    where = f" in {found['subdir']}/" if found.get("subdir") else ""
    init = found.get("init")
    osr = found.get("os_release")
    if init:
        link = f" -> {init[1]}" if init[1] != init[0] else ""
        text = f"holds an init ({init[0]}{link})"
    else:
        text = "holds no init"
    text += f" and {osr[0]}" if osr else " and no os-release"
    return text + where


def choose_root(raw_path: Path, partitions: Sequence[Partition], *,
                workdir: Path, source: str | None = None
                ) -> tuple[Partition, str]:
    """The partition holding the root file system, and why: the largest
    one with an init and an os-release; else the largest with an init;
    else the largest Linux file system."""
    source = source or str(raw_path)
    candidates = sorted((p for p in partitions if p.mountable),
                        key=lambda p: (-p.size_bytes, p.number))
    skipped = [p.describe() for p in partitions if not p.mountable]
    if not candidates:
        raise errors.InvalidImage(
            source=source, reason=f"no Linux file system on the disk "
            f"({'; '.join(skipped) or 'nothing found'})")
    started = time.monotonic()
    found = probe_all(raw_path, candidates, workdir=workdir, source=source)
    readable = [(p, f) for p, f in zip(candidates, found, strict=True)
                if "error" not in f]
    if not readable:
        raise errors.InvalidImage(
            source=source, reason="no file system could be mounted: "
            + "; ".join(f"{p.describe()} {holds_root(f)}"
                        for p, f in zip(candidates, found, strict=True)))

    def first(test: Callable[[dict[str, Any]], Any]
              ) -> tuple[Partition, dict[str, Any]] | None:
        return next(((p, f) for p, f in readable if test(f)), None)

    why = ""
    chosen = (first(lambda f: f["init"] and f["os_release"])
              or first(lambda f: f["init"]))
    if chosen is None:
        chosen = readable[0]
        why = "is the largest Linux file system and "
    partition, facts = chosen
    reason = f"{partition.name} {why}{holds_root(facts)}"
    others = [f"{p.name} {holds_root(f)}"
              for p, f in zip(candidates, found, strict=True)
              if p is not partition]
    if others:
        reason += "; " + "; ".join(others)
    if skipped:
        reason += "; skipped " + ", ".join(skipped)
    LOG.info("%s: root file system on %s: %s (probed in %.0f ms)", source,
             partition.describe(), reason,
             (time.monotonic() - started) * 1000)
    return partition, reason

