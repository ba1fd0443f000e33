"""Storage pools for container root file systems (see ``base``)."""

from __future__ import annotations

from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.storage.base import StorageError, StoragePool
from nova_lxd.engine.storage.btrfs import BtrfsPool
from nova_lxd.engine.storage.dir import DirPool

DRIVERS = ("dir", "btrfs")


def open_pool(config: EngineConfig) -> StoragePool:
    """The engine's pool, as configured (not yet made ready)."""
    if config.storage_driver == "dir":
        return DirPool("default", config.containers_dir)
    if config.storage_driver == "btrfs":
        return BtrfsPool("default", config.storage_dir,
                         source=config.storage_source,
                         loop_file=config.disks_dir / "default.img",
                         loop_size=config.storage_size)
    raise StorageError(pool="default", reason=(
        f"unknown storage driver {config.storage_driver!r}; use one of "
        f"{', '.join(DRIVERS)}"))
