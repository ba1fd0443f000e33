"""The engine as an unprivileged service sees it: every call crosses into
the privsep daemon (``nova_lxd.privsep.engine``) and the plain data that
comes back is turned into the engine's own types again.

``PrivilegedEngine`` has the methods of ``nova_lxd.engine.api.Engine``
that a service needs, with the same signatures, so callers (the Nova
driver) are written once against either.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.containers.files import RootfsFile
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.containers.snapshots import SnapshotRecord
from nova_lxd.engine.containers.state import ContainerState
from nova_lxd.engine.images.store import Image
from nova_lxd.engine.nics import Nic
from nova_lxd.privsep import engine as priv


@dataclasses.dataclass(frozen=True)
class HostSummary:
    """The host facts a service reports (``Engine.host`` in short)."""

    cpu_count: int
    memory_bytes: int
    apparmor: bool
    idmapped_mounts: bool


def _image(data: dict[str, Any]) -> Image:
    return Image.from_record(data, data.get("aliases", ()))


class PrivilegedEngine:
    def __init__(self, config: EngineConfig) -> None:
        # Paths only (download space, disk figures); the daemon reads the
        # same configuration files to build the engine that acts.
        self.config = config

    @property
    def host(self) -> HostSummary:
        return HostSummary(**priv.host_summary())

    def host_problems(self) -> list[str]:
        return priv.host_problems()

    # -- images ------------------------------------------------------------

    def find_image(self, origin: dict[str, Any]) -> Image | None:
        data = priv.find_image(origin)
        return _image(data) if data is not None else None

    def import_image(self, source: Path, *, aliases: tuple[str, ...] = (),
                     origin: dict[str, Any] | None = None,
                     disk_format: str | None = None,
                     container_format: str | None = None) -> Image:
        return _image(priv.import_image(str(source), list(aliases),
                                        disk_format, container_format,
                                        origin))

    def export_image(self, ref: str, dest: Path, *,
                     owner: tuple[int, int] | None = None) -> None:
        uid, gid = owner if owner is not None else (os.getuid(),
                                                    os.getgid())
        priv.export_image(ref, str(dest), uid, gid)

    def delete_image(self, ref: str) -> None:
        priv.delete_image(ref)

    def prune_images(self, max_bytes: int | None = None) -> list[str]:
        return priv.prune_images(max_bytes)

    # -- containers --------------------------------------------------------

    def create(self, name: str, image: str, **options: Any
               ) -> ContainerRecord:
        return ContainerRecord.from_dict(
            priv.create(name, image, _options(options), False))

    def launch(self, name: str, image: str, **options: Any
               ) -> ContainerState:
        return ContainerState(**priv.create(name, image, _options(options),
                                            True))

    def get(self, name: str) -> ContainerRecord:
        return ContainerRecord.from_dict(priv.record(name))

    def list(self) -> list[ContainerRecord]:
        return [ContainerRecord.from_dict(r) for r in priv.records()]

    def status(self, name: str) -> str:
        return priv.status(name)

    def state(self, name: str) -> ContainerState:
        return ContainerState(**priv.state(name))

    def start(self, name: str) -> None:
        priv.power(name, "start", None, False)

    def stop(self, name: str, *, timeout: float | None = None,
             force: bool = False) -> None:
        priv.power(name, "stop", timeout, force)

    def restart(self, name: str, *, timeout: float | None = None,
                force: bool = False) -> None:
        priv.power(name, "restart", timeout, force)

    def freeze(self, name: str) -> None:
        priv.power(name, "freeze", None, False)

    def unfreeze(self, name: str) -> None:
        priv.power(name, "unfreeze", None, False)

    def delete(self, name: str, *, force: bool = False) -> None:
        priv.delete(name, force)

    def update(self, name: str, *, limits: dict[str, Any] | None = None,
               root_disk: int | None = None) -> ContainerRecord:
        return ContainerRecord.from_dict(priv.update(name, limits,
                                                     root_disk))

    def rescue(self, name: str, image: str) -> ContainerRecord:
        return ContainerRecord.from_dict(priv.rescue(name, image))

    def unrescue(self, name: str) -> ContainerRecord:
        return ContainerRecord.from_dict(priv.unrescue(name))

    def storage_marker_create(self) -> str:
        return priv.storage_marker("create", None)

    def storage_marker_exists(self, token: str) -> bool:
        return priv.storage_marker("exists", token)

    def storage_marker_remove(self, token: str) -> None:
        priv.storage_marker("remove", token)

    def snapshot_create(self, name: str, snapshot: str) -> SnapshotRecord:
        return SnapshotRecord(**priv.snapshot("create", name, snapshot))

    def snapshot_delete(self, name: str, snapshot: str) -> None:
        priv.snapshot("delete", name, snapshot)

    def snapshot_export(self, name: str, snapshot: str) -> Image:
        return _image(priv.snapshot("export", name, snapshot))

    def push_files(self, name: str, files: Iterable[RootfsFile]) -> None:
        priv.push_files(name, [dataclasses.asdict(f) for f in files])

    def console_log(self, name: str, max_bytes: int = 1024 * 1024) -> str:
        return priv.console_log(name, max_bytes)


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """``Engine.create`` keywords as plain data."""
    out = dict(options)
    out["nics"] = [dataclasses.asdict(n) if isinstance(n, Nic) else n
                   for n in options.get("nics", ())]
    out["files"] = [dataclasses.asdict(f) for f in options.get("files", ())]
    return priv.plain(out)
