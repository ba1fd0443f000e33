"""Container records: what the engine knows about a container that liblxc
does not (image, id map, limits, why it exists), persisted as JSON next to
liblxc's own config so that any engine process sees the same containers.

A record's ``phase`` says whether the container is usable: ``creating``
and ``deleting`` records whose lock is free belong to an operation that
died, and recovery finishes or undoes them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from nova_lxd.engine import errors, fsutil
from nova_lxd.engine.idmap import Idmap
from nova_lxd.engine.nics import Nic

CREATING = "creating"
READY = "ready"
DELETING = "deleting"
RENAMING = "renaming"
"""Being renamed to ``renaming_to`` (see ``containers.rename``)."""

RECORD_FILE = "record.json"
RESCUE_MOUNT = "/mnt/rescue"


def rescue_volume(name: str) -> str:
    """The pool volume of a rescue rootfs: not a valid container name,
    so never another container's."""
    return f"{name}.rescue"


@dataclasses.dataclass(frozen=True)
class ContainerPaths:
    """Where a container's files live: ``<containers_dir>/<name>/``."""

    directory: Path

    @property
    def record(self) -> Path:
        return self.directory / RECORD_FILE

    @property
    def lxc_config(self) -> Path:
        return self.directory / "config"

    @property
    def rootfs(self) -> Path:
        return self.directory / "rootfs"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def lxc_log(self) -> Path:
        return self.directory / "lxc.log"

    @property
    def seccomp_profile(self) -> Path:
        return self.directory / "seccomp.profile"

    @property
    def traffic_hook(self) -> Path:
        return self.directory / "traffic-hook.sh"


@dataclasses.dataclass(frozen=True)
class ContainerRecord:
    name: str
    image: str
    """Fingerprint of the image the container was created from."""
    phase: str = CREATING
    privileged: bool = False
    idmap: Idmap | None = None
    idmapped_mount: bool = True
    """False when the rootfs was chown-shifted into the id map instead."""
    limits: dict[str, Any] = dataclasses.field(default_factory=dict)
    halt_signal: str = "SIGPWR"
    hostname: str | None = None
    """The container's hostname (uts name); defaults to its name."""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    """The caller's own keys (Nova: the instance uuid), kept as given."""
    nics: tuple[Nic, ...] = ()
    nesting: bool = False
    """May run containers of its own (``/dev/.lxc/{proc,sys}`` mounted)."""
    shared_idmap: bool = False
    """Shares its id range with the other shared containers."""
    stateful: bool = False
    """CRIU can dump and restore it (LXD's ``migration.stateful``): it has
    no console device (liblxc 5 cannot restore one), so no console log;
    stateful snapshots and live moves need it."""
    root_disk_bytes: int | None = None
    """The root disk size asked for."""
    root_disk_enforced: bool = False
    """Whether the storage pool enforces it (btrfs: yes; dir: no)."""
    rescue_image: str | None = None
    """Set while rescued: it boots this image, its own rootfs mounted at
    ``RESCUE_MOUNT``."""
    created_at: float = dataclasses.field(default_factory=time.time)
    renaming_to: str | None = None
    """The new name while ``phase`` is ``renaming``."""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["idmap"] = dataclasses.asdict(self.idmap) if self.idmap else None
        data["nics"] = [dataclasses.asdict(nic) for nic in self.nics]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerRecord:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        if values.get("idmap"):
            values["idmap"] = Idmap(**values["idmap"])
        values["nics"] = tuple(Nic(**nic) for nic in values.get("nics", ()))
        return cls(**values)

    def replace(self, **changes: Any) -> ContainerRecord:
        return dataclasses.replace(self, **changes)

    @property
    def host_root(self) -> tuple[int, int]:
        """The host (uid, gid) its root runs as."""
        if self.idmap is None:
            return 0, 0
        return self.idmap.uid_base, self.idmap.gid_base


class RecordStore:
    """Reads and writes records under the engine's containers directory."""

    def __init__(self, containers_dir: Path) -> None:
        self.containers_dir = Path(containers_dir)

    def paths(self, name: str) -> ContainerPaths:
        return ContainerPaths(self.containers_dir / name)

    def exists(self, name: str) -> bool:
        return self.paths(name).record.exists()

    def load(self, name: str) -> ContainerRecord:
        try:
            data = fsutil.read_json(self.paths(name).record)
        except FileNotFoundError:
            raise errors.ContainerNotFound(name=name) from None
        except ValueError as exc:
            raise errors.OperationFailed(
                action="read", name=name,
                reason=f"its record is corrupt ({exc})") from exc
        return ContainerRecord.from_dict(data)

    def save(self, record: ContainerRecord) -> None:
        fsutil.write_json(self.paths(record.name).record, record.to_dict(),
                          mode=0o600)

    def names(self) -> list[str]:
        if not self.containers_dir.is_dir():
            return []
        return sorted(p.parent.name
                      for p in self.containers_dir.glob(f"*/{RECORD_FILE}"))

    def all(self) -> list[ContainerRecord]:
        records = []
        for name in self.names():
            try:
                records.append(self.load(name))
            except errors.NotFound:
                continue  # deleted meanwhile
        return records
