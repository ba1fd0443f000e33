"""Facts about this host that decide how containers are configured.

Everything is read from /proc and /sys under a ``root`` seam (default
``/``) so tests can point it at a fake tree. The idmapped-mount probe is
the one real experiment: kernels, filesystems and security modules differ
too much for a version check to be trusted.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from oslo_log import log as logging

from nova_lxd.engine import errors
from nova_lxd.engine.limits import parse_cpuset
from nova_lxd.engine.security import apparmor as _apparmor

LOG = logging.getLogger(__name__)

ROOT = Path("/")
CONTROLLERS = ("cpu", "cpuset", "memory", "pids", "freezer", "cpuacct",
               "devices", "blkio")
# Controllers whose cgroup2 name differs: v1 blkio is v2 io.
_V2_NAMES = {"io": "blkio"}
# Built into cgroup2 rather than listed in cgroup.controllers: the
# freezer (cgroup.freeze), cpuacct's counters (cpu.stat) and the devices
# controller (BPF programs, which liblxc attaches).
_V2_CORE = ("freezer", "cpuacct", "devices")


def _at(root: Path, path: str) -> Path:
    return Path(root) / path.lstrip("/")


def _unescape(field: str) -> str:
    """Mount points in /proc/self/mounts escape space, tab, \\n and \\."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"),
                       ("\\134", "\\")):
        field = field.replace(code, char)
    return field


@dataclasses.dataclass(frozen=True)
class CgroupLayout:
    """Which cgroup version serves each controller, and the mount mode.

    ``mode`` is ``v1`` (no cgroup2), ``hybrid`` (cgroup2 mounted beside
    v1 controllers, as here) or ``v2`` (no controller on v1).
    """

    mode: str
    cpu: str | None = None
    cpuset: str | None = None
    memory: str | None = None
    pids: str | None = None
    freezer: str | None = None
    cpuacct: str | None = None
    devices: str | None = None
    blkio: str | None = None
    """Block IO throttling: v1 ``blkio`` or v2 ``io``."""
    v1_mounts: tuple[tuple[str, str], ...] = ()
    """(controller, mount point) for controllers on v1."""
    unified_mount: str | None = None

    def version(self, controller: str) -> str | None:
        """'v1', 'v2' or None (the controller is not available)."""
        if controller not in CONTROLLERS:
            raise ValueError(f"unknown cgroup controller {controller!r}")
        return getattr(self, controller)

    def mountpoint(self, controller: str) -> str | None:
        """Where the hierarchy serving ``controller`` is mounted."""
        version = self.version(controller)
        if version == "v2":
            return self.unified_mount
        return dict(self.v1_mounts).get(controller) if version else None


def _enabled_controllers(root: Path) -> set[str] | None:
    """Controllers /proc/cgroups says are enabled (None: no such file)."""
    try:
        lines = _at(root, "/proc/cgroups").read_text().splitlines()
    except FileNotFoundError:
        return None
    enabled = set()
    for line in lines:
        fields = line.split()
        if len(fields) == 4 and not line.startswith("#") and (
                fields[3] == "1"):
            enabled.add(fields[0])
    return enabled


def cgroup_layout(root: Path = ROOT) -> CgroupLayout:
    """Read the layout from /proc/self/mounts, /proc/cgroups and the
    unified hierarchy's cgroup.controllers."""
    enabled = _enabled_controllers(root)
    v1: dict[str, str] = {}
    unified = None
    for line in _at(root, "/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mountpoint, fstype = _unescape(fields[1]), fields[2]
        if fstype == "cgroup2" and unified is None:
            unified = mountpoint
        elif fstype == "cgroup":
            for opt in fields[3].split(","):
                if opt in CONTROLLERS:
                    v1.setdefault(opt, mountpoint)
    if enabled is not None:
        v1 = {c: m for c, m in v1.items() if c in enabled}
    v2: set[str] = set()
    if unified is not None:
        path = _at(root, unified) / "cgroup.controllers"
        try:
            v2 = {_V2_NAMES.get(c, c) for c in path.read_text().split()}
        except FileNotFoundError:
            LOG.debug("%s is missing: no controllers on cgroup v2", path)
        v2.update(c for c in _V2_CORE if c not in v1)
    if not v1 and unified is None:
        raise errors.HostError(reason="no cgroup hierarchy is mounted "
                                      "(see /proc/self/mounts)")
    versions = {c: "v1" if c in v1 else "v2" if c in v2 else None
                for c in CONTROLLERS}
    mode = "v1" if unified is None else "hybrid" if v1 else "v2"
    return CgroupLayout(mode=mode, v1_mounts=tuple(sorted(v1.items())),
                        unified_mount=unified, **versions)


def apparmor_enabled(root: Path = ROOT) -> bool:
    """True when the kernel has AppArmor and it is switched on."""
    path = _at(root, "/sys/module/apparmor/parameters/enabled")
    try:
        return path.read_text().strip() == "Y"
    except OSError:
        return False


def online_cpus(root: Path = ROOT) -> tuple[int, ...]:
    """The online cpu numbers (not the count: they may have holes)."""
    path = _at(root, "/sys/devices/system/cpu/online")
    try:
        return parse_cpuset(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise errors.HostError(reason=f"cannot read online cpus from "
                                      f"{path}: {exc}") from exc


def warn_no_apparmor() -> None:
    """Log, once per process, that containers run without an LSM."""
    _apparmor.warn_unavailable()


def cpu_count(root: Path = ROOT) -> int:
    """How many cpus are online."""
    return len(online_cpus(root))


def memory_bytes(root: Path = ROOT) -> int:
    """Total host memory (MemTotal) in bytes."""
    path = _at(root, "/proc/meminfo")
    for line in path.read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "MemTotal":
            return int(value.split()[0]) * 1024
    raise errors.HostError(reason=f"no MemTotal in {path}")


def _own_cgroup2(root: Path) -> str:
    """This process' path in the unified hierarchy ('0::/...')."""
    try:
        for line in _at(root, "/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return "/"


def _v2_child_file(base: Path, root: Path, name: str) -> bool:
    """Whether a cgroup below the v2 root has file ``name`` (the root
    cgroup lacks the limit files), looking at our own cgroup first."""
    own = base / _own_cgroup2(root).lstrip("/")
    if (own / name).exists():
        return True
    try:
        return any((child / name).exists()
                   for child in base.iterdir() if child.is_dir())
    except OSError:
        return False


def swap_accounting(layout: CgroupLayout, root: Path = ROOT) -> bool:
    """Whether swap can be limited: memsw files on v1, memory.swap.max
    on v2 (absent from the v2 root cgroup, so look in a child)."""
    mount = layout.mountpoint("memory")
    if mount is None:
        return False
    base = _at(root, mount)
    if layout.memory == "v1":
        return (base / "memory.memsw.limit_in_bytes").exists()
    return _v2_child_file(base, root, "memory.swap.max")


# open_tree and mount_setattr share one number on every architecture
# that follows the unified syscall table (all but alpha, ia64 and mips).
_MOUNT_API_NRS = {machine: (428, 442) for machine in (
    "x86_64", "aarch64", "i686", "armv7l", "armv8l", "ppc64le", "s390x",
    "riscv64")}
AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
MOUNT_ATTR_IDMAP = 0x00100000
PROBE_MAP = "0 1000000 65536"
_PROBE_CACHE: dict[int, bool] = {}
_PROBE_LOCK = threading.Lock()


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64),
                ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def _syscall(nr: int, *args: object) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(ctypes.c_long(nr), *args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syscall {nr}: {os.strerror(err)}")
    return ret


def _wait_for_userns(child: subprocess.Popen, timeout: float = 5) -> None:
    """Until ``child`` has left our user namespace (unshare ran)."""
    ours = os.readlink("/proc/self/ns/user")
    deadline = time.monotonic() + timeout
    while os.readlink(f"/proc/{child.pid}/ns/user") == ours:
        if child.poll() is not None or time.monotonic() > deadline:
            raise OSError(f"unshare --user exited or hung "
                          f"(status {child.returncode})")
        time.sleep(0.001)


def _probe_idmap(path: Path, nrs: tuple[int, int]) -> None:
    """Idmap a detached clone of ``path``; raises OSError on failure.

    The user namespace comes from ``unshare --user cat``: cat waits on
    its stdin, so closing the pipe ends it even if we are killed.
    """
    child = subprocess.Popen(["unshare", "--user", "--", "cat"],
                             stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    fds: list[int] = []
    try:
        _wait_for_userns(child)
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{child.pid}/{name}").write_text(PROBE_MAP + "\n")
        fds.append(os.open(f"/proc/{child.pid}/ns/user",
                           os.O_RDONLY | os.O_CLOEXEC))
        fds.append(_syscall(nrs[0], ctypes.c_long(AT_FDCWD),
                            ctypes.c_char_p(os.fsencode(path)),
                            ctypes.c_long(OPEN_TREE_CLONE
                                          | OPEN_TREE_CLOEXEC)))
        attr = _MountAttr(attr_set=MOUNT_ATTR_IDMAP, userns_fd=fds[0])
        _syscall(nrs[1], ctypes.c_long(fds[1]), ctypes.c_char_p(b""),
                 ctypes.c_long(AT_EMPTY_PATH), ctypes.byref(attr),
                 ctypes.c_size_t(ctypes.sizeof(attr)))
    finally:
        for fd in fds:
            os.close(fd)
        child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def idmapped_mounts_supported(path: Path) -> bool:
    """Whether an idmapped mount of ``path`` works here, by making one.

    The answer is cached per file-system device: it depends on the file
    system and the kernel, not on the directory.
    """
    nrs = _MOUNT_API_NRS.get(platform.machine())
    try:
        dev = os.stat(path).st_dev
    except OSError as exc:
        LOG.debug("No idmapped mount probe of %s: %s", path, exc)
        return False
    with _PROBE_LOCK:
        if dev not in _PROBE_CACHE:
            try:
                if nrs is None:
                    raise OSError(f"no syscall numbers for "
                                  f"{platform.machine()}")
                _probe_idmap(Path(path), nrs)
                _PROBE_CACHE[dev] = True
            except (OSError, subprocess.SubprocessError) as exc:
                LOG.debug("Idmapped mounts do not work on %s: %s",
                          path, exc)
                _PROBE_CACHE[dev] = False
        return _PROBE_CACHE[dev]


def clear_probe_cache() -> None:
    """Forget probe results (tests; or after a kernel change)."""
    with _PROBE_LOCK:
        _PROBE_CACHE.clear()


def _dev_text(root: Path, dev: str) -> str | None:
    """The whole disk (MAJ:MIN) of block device ``dev``, or None when
    sysfs has no such block device. A partition resolves to its parent
    disk (the sysfs directory above it); device-mapper, md, loop and
    whole disks are themselves."""
    node = _at(root, f"/sys/dev/block/{dev}")
    if not node.exists():
        return None
    if not (node / "partition").exists():
        return dev
    try:
        return (node.resolve().parent / "dev").read_text().strip()
    except OSError:
        return None


def _fstype(path: Path, root: Path) -> str:
    """The file system type of the mount holding ``path``."""
    best, fstype = "", "unknown"
    try:
        lines = _at(root, "/proc/self/mounts").read_text().splitlines()
    except OSError:
        return fstype
    text = str(path).rstrip("/") + "/"
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = _unescape(fields[1]).rstrip("/") + "/"
        if text.startswith(mount) and len(mount) >= len(best):
            best, fstype = mount, fields[2]
    return fstype


def disk_device(path: Path, layout: CgroupLayout, root: Path = ROOT,
                st_dev: int | None = None) -> tuple[str | None, str | None]:
    """``("MAJ:MIN", None)`` of the disk holding ``path`` when block IO
    can be throttled there, else ``(None, why not)``."""
    if layout.blkio is None:
        return None, ("this host has no blkio (cgroup v1) or io (cgroup "
                      "v2) controller")
    base = _at(root, layout.mountpoint("blkio") or "/")
    if not ((base / "blkio.throttle.read_bps_device").exists()
            if layout.blkio == "v1"
            else _v2_child_file(base, root, "io.max")):
        return None, ("the kernel has no block IO throttling "
                      "(CONFIG_BLK_DEV_THROTTLING)")
    try:
        dev = os.stat(path).st_dev if st_dev is None else st_dev
    except OSError as exc:
        return None, f"cannot stat {path}: {exc}"
    major, minor = os.major(dev), os.minor(dev)
    if major == 0:
        return None, (f"{path} is on a {_fstype(path, root)} file system "
                      f"with no block device of its own (device "
                      f"{major}:{minor}: btrfs, overlay, tmpfs and network "
                      f"file systems cannot be throttled per disk)")
    disk = _dev_text(root, f"{major}:{minor}")
    if disk is None:
        return None, (f"{path} is on device {major}:{minor}, which is "
                      f"not a block device in /sys/dev/block")
    return disk, None


@dataclasses.dataclass(frozen=True)
class HostInfo:
    """What the renderers and feasibility checks need to know."""

    cgroups: CgroupLayout
    online_cpus: tuple[int, ...]
    memory_bytes: int
    swap_accounting: bool
    apparmor: bool
    idmapped_mounts: bool
    disk_device: str | None = None
    """MAJ:MIN of the whole disk holding the containers directory, when
    its block IO can be throttled (``limits.disk.*``)."""
    disk_problem: str | None = None
    """Why ``disk_device`` is None."""

    @property
    def cpu_count(self) -> int:
        return len(self.online_cpus)


def probe_host(probe_path: Path, *, root: Path = ROOT,
               idmap_probe: Callable[[Path], bool] = (
                   idmapped_mounts_supported)) -> HostInfo:
    """Gather every fact once; ``probe_path`` is where container root
    file systems live (the idmapped-mount probe runs there)."""
    layout = cgroup_layout(root)
    disk, disk_problem = disk_device(Path(probe_path), layout, root)
    info = HostInfo(cgroups=layout, online_cpus=online_cpus(root),
                    memory_bytes=memory_bytes(root),
                    swap_accounting=swap_accounting(layout, root),
                    apparmor=apparmor_enabled(root),
                    idmapped_mounts=idmap_probe(Path(probe_path)),
                    disk_device=disk, disk_problem=disk_problem)
    LOG.info("Host: cgroup %s (%s), %d cpus, %d MiB, swap accounting %s, "
             "AppArmor %s, idmapped mounts %s, disk %s", layout.mode,
             ", ".join(f"{c}={layout.version(c)}" for c in CONTROLLERS),
             info.cpu_count, info.memory_bytes // (1024 * 1024),
             info.swap_accounting, info.apparmor, info.idmapped_mounts,
             disk or disk_problem)
    return info
