"""Options of the container engine, group ``[lxc]``.

One option per field of :class:`nova_lxd.engine.config.EngineConfig`, with
the same name and default. Nothing is registered at import time: callers
pass their own ``ConfigOpts`` to :func:`register_opts` and turn it into the
engine's value object with :func:`engine_config`.
"""

from __future__ import annotations

from pathlib import Path

from oslo_config import cfg

from nova_lxd.engine.config import EngineConfig, GiB, MiB

GROUP = cfg.OptGroup(
    "lxc",
    title="Container engine options",
    help="How nova-lxd stores and runs system containers on liblxc.",
)

ENGINE_OPTS = [
    cfg.StrOpt(
        "root",
        default="/var/lib/nova-lxd",
        help="""
Directory holding the engine's state: unpacked images, container root
file systems and configuration, and lock files. Put it on a file system
with room for every image and container of the host.
"""),
    cfg.StrOpt(
        "idmap_user",
        default="root",
        help="""
User whose subordinate id ranges (in ``subuid_file`` and ``subgid_file``)
are shared out to containers. Every container gets its own block of
``idmap_size`` ids from these ranges, so that root in one container is
an unprivileged id on the host and in every other container. The user
needs a range in both files, for example ``root:1000000:1000000000``;
without one liblxc refuses to start containers ("uid range not
allowed").
"""),
    cfg.IntOpt(
        "idmap_size",
        default=65536,
        min=65536,
        help="""
Number of user and group ids mapped into each container. 65536 covers
every id a usual distribution uses (``nobody`` is 65534). The subordinate
ranges of ``idmap_user`` divided by this number bound how many containers
the host can hold.
"""),
    cfg.StrOpt(
        "subuid_file",
        default="/etc/subuid",
        help="File listing subordinate user id ranges (see subuid(5)).",
    ),
    cfg.StrOpt(
        "subgid_file",
        default="/etc/subgid",
        help="File listing subordinate group id ranges (see subgid(5)).",
    ),
    cfg.StrOpt(
        "idmapped_mounts",
        default="auto",
        choices=[
            ("auto", "use idmapped mounts when the kernel supports them "
                     "on the container's file system, else chown"),
            ("always", "always use idmapped mounts; fail where they are "
                       "not supported"),
            ("never", "always chown-shift root file systems to the "
                      "container's ids"),
        ],
        help="""
How a container's root file system, owned by host root, is made to
belong to the container's ids. An idmapped mount does this without
touching a file and leaves the image shareable between containers;
chown-shifting rewrites the owner of every file of the copy once.
"""),
    cfg.FloatOpt(
        "stop_timeout",
        default=30.0,
        min=0,
        help="""
Seconds a clean shutdown (the container's init halting its services)
may take before the container is killed. Raise it for containers whose
services need long to stop; 0 kills at once.
"""),
    cfg.FloatOpt(
        "lock_timeout",
        default=120.0,
        min=0,
        help="""
Seconds an operation on a container waits for another operation on the
same container (for example a start while a snapshot is taken) before it
fails. 0 fails at once when the container is busy.
"""),
    cfg.IntOpt(
        "console_log_size",
        default=1 * MiB,
        min=4096,
        help="""
Size in bytes at which liblxc rotates a container's console log (one
older file is kept), so that a container writing to its console cannot
fill the host's disk.
"""),
    cfg.IntOpt(
        "max_unpacked_size",
        default=20 * GiB,
        min=1,
        help="""
Largest number of bytes an image may expand to when it is unpacked. An
image above it is refused, which protects the host from compression
bombs and images too large for the disk.
"""),
    cfg.IntOpt(
        "max_image_members",
        default=2_000_000,
        min=1,
        help="""
Largest number of files, directories and links an image may contain.
An image above it is refused, which protects the host from archives made
to exhaust inodes or memory.
"""),
    cfg.IntOpt(
        "max_virtual_size",
        default=100 * GiB,
        min=1,
        help="""
Largest virtual size in bytes a disk image (qcow2, vmdk, vdi, vhdx, raw)
may declare. Disk images are expanded to a sparse raw file while they
are converted into a root file system tarball, so this bounds the
scratch space a tenant's image can claim.
"""),
    cfg.IntOpt(
        "image_cache_max_size",
        default=50 * GiB,
        min=0,
        help="""
Size in bytes the local image store is pruned to by the periodic image
cache manager: the least recently used images that no container uses
are removed first. 0 keeps every image.
"""),
    cfg.IntOpt(
        "qemu_img_cpu_seconds",
        default=600,
        min=1,
        help="""
CPU seconds one ``qemu-img`` run may use while it inspects or converts
an untrusted disk image, so that a crafted image cannot keep a core busy
for ever.
"""),
    cfg.IntOpt(
        "qemu_img_memory",
        default=1 * GiB,
        min=64 * MiB,
        help="""
Address space in bytes one ``qemu-img`` run may use while it inspects or
converts an untrusted disk image (crafted images have made qemu-img
allocate without bound).
"""),
    cfg.StrOpt(
        "lxc_start",
        default="lxc-start",
        help="""
liblxc's start tool, a name looked up on PATH or an absolute path. The
engine runs it to start containers, so that each container's monitor is a
small process and not a fork of the engine's own.
"""),
    cfg.StrOpt(
        "log_level",
        default="WARN",
        choices=[
            ("TRACE", "everything liblxc does, for debugging liblxc"),
            ("DEBUG", "steps of container set-up, for debugging a start"),
            ("INFO", "informational messages"),
            ("NOTICE", "normal but significant events"),
            ("WARN", "problems that did not stop the operation"),
            ("ERROR", "failed operations only"),
            ("CRIT", "critical conditions only"),
            ("ALERT", "conditions needing immediate action only"),
            ("FATAL", "fatal errors only"),
        ],
        help="""
Level of liblxc's own log of each container (``lxc.log.level``). Raise
it to DEBUG or TRACE to find out why a container does not start.
"""),
    cfg.StrOpt(
        "storage_driver",
        default="dir",
        choices=[
            ("dir", "directories on the root's file system: works "
                    "everywhere; snapshots are copies; root disk sizes "
                    "are not enforced"),
            ("btrfs", "copy-on-write subvolumes: containers and snapshots "
                      "are instant, root disk sizes are enforced with "
                      "qgroups"),
        ],
        help="""
How container root file systems are stored. Changing it does not move
existing containers.
"""),
    cfg.StrOpt(
        "storage_source",
        default="",
        help="""
For ``btrfs``: a block device (formatted if blank, refused if it holds
another file system), a directory on a mounted btrfs file system, or
empty: a sparse file under ``root/disks`` that the engine formats and
loop-mounts under ``root/storage`` (again after a reboot).
"""),
    cfg.IntOpt(
        "storage_size",
        default=20 * GiB,
        min=256 * MiB,
        help="""
Size in bytes of the sparse file of a loop-backed ``btrfs`` pool; space is
taken as containers fill it. Only read when the file is created.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[lxc]`` options on ``conf``."""
    conf.register_group(GROUP)
    conf.register_opts(ENGINE_OPTS, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP.name, ENGINE_OPTS)]


def engine_config(conf: cfg.ConfigOpts) -> EngineConfig:
    """The engine's settings from ``conf`` (after :func:`register_opts`)."""
    group = conf[GROUP.name]
    return EngineConfig(
        root=Path(group.root),
        idmap_user=group.idmap_user,
        idmap_size=group.idmap_size,
        subuid_file=Path(group.subuid_file),
        subgid_file=Path(group.subgid_file),
        idmapped_mounts=group.idmapped_mounts,
        stop_timeout=group.stop_timeout,
        lock_timeout=group.lock_timeout,
        console_log_size=group.console_log_size,
        max_unpacked_size=group.max_unpacked_size,
        max_image_members=group.max_image_members,
        max_virtual_size=group.max_virtual_size,
        image_cache_max_size=group.image_cache_max_size,
        qemu_img_cpu_seconds=group.qemu_img_cpu_seconds,
        qemu_img_memory=group.qemu_img_memory,
        lxc_start=group.lxc_start,
        log_level=group.log_level,
        storage_driver=group.storage_driver,
        storage_source=group.storage_source,
        storage_size=group.storage_size,
    )
