"""Engine operations behind the privsep boundary.

Each entrypoint is one engine operation taking and returning plain data
(privsep speaks msgpack), so that the unprivileged caller never holds an
Engine of its own; ``nova_lxd.privsep.proxy`` turns the data back into
the engine's types. Engine errors cross the boundary as themselves:
privsep rebuilds exceptions from their class and message.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

from oslo_config import cfg

from nova_lxd import conf as lxd_conf
from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.containers.files import RootfsFile
from nova_lxd.privsep import engine_context

_ENGINES: dict[EngineConfig, Engine] = {}
_ENGINES_LOCK = threading.Lock()
_POWER_ACTIONS = ("start", "stop", "restart", "freeze", "unfreeze")


def _engine() -> Engine:
    """The engine for the current configuration (the daemon's config
    files, or the caller's when privsep runs in process), built once per
    configuration: building one runs crash recovery."""
    conf = cfg.CONF
    if "lxc" not in conf:
        lxd_conf.register_opts(conf)
    config = lxd_conf.engine_config(conf)
    with _ENGINES_LOCK:
        if config not in _ENGINES:
            _ENGINES[config] = Engine(config)
        return _ENGINES[config]


def plain(obj: Any) -> Any:
    """Dataclasses, tuples and dicts as msgpack-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(obj.to_dict() if hasattr(obj, "to_dict")
                     else dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


@engine_context.entrypoint
def import_image(path: str, aliases: list[str], disk_format: str | None,
                 container_format: str | None,
                 origin: dict[str, Any] | None) -> dict[str, Any]:
    image = _engine().import_image(
        path, aliases=tuple(aliases), disk_format=disk_format,
        container_format=container_format, origin=origin)
    return plain(image)


@engine_context.entrypoint
def find_image(origin: dict[str, Any]) -> dict[str, Any] | None:
    image = _engine().find_image(origin)
    return plain(image) if image is not None else None


@engine_context.entrypoint
def create(name: str, image: str, options: dict[str, Any],
           start: bool) -> dict[str, Any]:
    """``options`` are ``Engine.create`` keywords; files come as dicts."""
    options = dict(options)
    options["files"] = [RootfsFile.from_dict(f)
                        for f in options.get("files", ())]
    engine = _engine()
    if start:
        return plain(engine.launch(name, image, **options))
    return plain(engine.create(name, image, **options))


@engine_context.entrypoint
def power(name: str, action: str, timeout: float | None,
          force: bool) -> None:
    if action not in _POWER_ACTIONS:
        raise ValueError(f"unknown power action {action!r}")
    engine = _engine()
    if action in ("stop", "restart"):
        getattr(engine, action)(name, timeout=timeout, force=force)
    else:
        getattr(engine, action)(name)


@engine_context.entrypoint
def delete(name: str, force: bool) -> None:
    _engine().delete(name, force=force)


@engine_context.entrypoint
def state(name: str) -> dict[str, Any]:
    return plain(_engine().state(name))


@engine_context.entrypoint
def status(name: str) -> str:
    return _engine().status(name)


@engine_context.entrypoint
def record(name: str) -> dict[str, Any]:
    return plain(_engine().get(name))


@engine_context.entrypoint
def records() -> list[dict[str, Any]]:
    return plain(_engine().list())


@engine_context.entrypoint
def names() -> list[str]:
    return [r.name for r in _engine().list()]


@engine_context.entrypoint
def push_files(name: str, files: list[dict[str, Any]]) -> None:
    _engine().push_files(name, [RootfsFile.from_dict(f) for f in files])


@engine_context.entrypoint
def console_log(name: str, max_bytes: int) -> str:
    return _engine().console_log(name, max_bytes)


@engine_context.entrypoint
def prune_images(max_bytes: int | None) -> list[str]:
    return [image.fingerprint for image in _engine().prune_images(max_bytes)]


@engine_context.entrypoint
def host_summary() -> dict[str, Any]:
    info = _engine().host
    return {"cpu_count": info.cpu_count, "memory_bytes": info.memory_bytes,
            "apparmor": info.apparmor,
            "idmapped_mounts": info.idmapped_mounts}


@engine_context.entrypoint
def host_problems() -> list[str]:
    return _engine().host_problems()


@engine_context.entrypoint
def update(name: str, limits: dict[str, str] | None,
           root_disk: int | None) -> dict[str, Any]:
    return plain(_engine().update(name, limits=limits, root_disk=root_disk))


@engine_context.entrypoint
def rescue(name: str, image: str) -> dict[str, Any]:
    return plain(_engine().rescue(name, image))


@engine_context.entrypoint
def unrescue(name: str) -> dict[str, Any]:
    return plain(_engine().unrescue(name))


@engine_context.entrypoint
def storage_marker(action: str, token: str | None) -> str | bool | None:
    engine = _engine()
    if action == "create":
        return engine.storage_marker_create()
    if action == "exists":
        return engine.storage_marker_exists(token)
    if action == "remove":
        engine.storage_marker_remove(token)
        return None
    raise ValueError(f"unknown marker action {action!r}")


@engine_context.entrypoint
def snapshot(action: str, name: str, snapshot: str) -> dict[str, Any] | None:
    """create, delete or export (as an image in the store) a snapshot."""
    engine = _engine()
    if action == "create":
        return plain(engine.snapshot_create(name, snapshot))
    if action == "delete":
        engine.snapshot_delete(name, snapshot)
        return None
    if action == "export":
        return plain(engine.snapshot_export(name, snapshot))
    raise ValueError(f"unknown snapshot action {action!r}")


@engine_context.entrypoint
def export_image(ref: str, dest: str, uid: int, gid: int) -> None:
    _engine().export_image(ref, Path(dest), owner=(uid, gid))


@engine_context.entrypoint
def delete_image(ref: str) -> None:
    _engine().delete_image(ref)
