"""The engine's settings: a plain value object, no global state.

The oslo.config options in ``nova_lxd.conf`` are turned into one of these
by whoever embeds the engine (Nova driver, daemon, tools), so the engine
itself never reads a global CONF.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    root: Path = Path("/var/lib/nova-lxd")
    """Where images, containers and locks live."""

    idmap_user: str = "root"
    """Whose subordinate ranges in /etc/subuid and /etc/subgid to use."""

    idmap_size: int = 65536
    """Ids per container; each container gets its own isolated range."""

    subuid_file: Path = Path("/etc/subuid")
    subgid_file: Path = Path("/etc/subgid")

    idmapped_mounts: str = "auto"
    """``auto`` (probe the kernel), ``always`` or ``never`` (chown-shift)."""

    stop_timeout: float = 30.0
    """Seconds a clean shutdown may take before the container is killed."""

    lock_timeout: float = 120.0
    """Seconds to wait for another operation on the same container."""

    console_log_size: int = 1 * MiB
    """Size at which liblxc rotates the console log (one old file kept)."""

    max_unpacked_size: int = 20 * GiB
    """Bound on the bytes an image may expand to when it is unpacked."""

    max_image_members: int = 2_000_000
    """Bound on the number of files an image may contain."""

    max_virtual_size: int = 100 * GiB
    """Bound on the virtual size a disk image (qcow2, vmdk, ...) declares."""

    image_cache_max_size: int = 50 * GiB
    """Size the image store is pruned to (least recently used first,
    never an image a container uses); 0 turns pruning off."""

    qemu_img_cpu_seconds: int = 600
    """CPU time a single ``qemu-img`` run may use on an untrusted image."""

    qemu_img_memory: int = 1 * GiB
    """Address space a single ``qemu-img`` run may use."""

    lxc_start: str = "lxc-start"
    """The liblxc start tool; exec'd so that monitors stay small."""

    log_level: str = "WARN"
    """liblxc's per-container log level."""

    storage_driver: str = "dir"
    """``dir`` (any file system, no quotas) or ``btrfs`` (CoW, quotas)."""

    storage_source: str = ""
    """btrfs: a block device, a directory on btrfs, or empty for a sparse
    file under the root that the engine formats and loop-mounts."""

    storage_size: int = 20 * GiB
    """Size of that sparse file (allocated as it fills)."""

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def containers_dir(self) -> Path:
        return self.root / "containers"

    @property
    def storage_dir(self) -> Path:
        """Where a btrfs pool is mounted."""
        return self.root / "storage" / "default"

    @property
    def disks_dir(self) -> Path:
        """Sparse files backing loop-mounted pools."""
        return self.root / "disks"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"
