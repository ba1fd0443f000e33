"""Engine operations behind the privsep boundary.

Each entrypoint is one engine operation, taking and returning plain data
(privsep sends msgpack), so that the unprivileged caller never holds an
Engine of its own. Engine errors cross the boundary as themselves: privsep
rebuilds exceptions from their class and message.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from oslo_config import cfg

from nova_lxd import conf as lxd_conf
from nova_lxd.engine.api import Engine
from nova_lxd.privsep import engine_context


@functools.lru_cache(maxsize=1)
def _engine() -> Engine:
    """The daemon's engine, configured from the same config files as the
    service that started the daemon."""
    conf = cfg.CONF
    if "lxc" not in conf:
        lxd_conf.register_opts(conf)
    return Engine(lxd_conf.engine_config(conf))


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


@engine_context.entrypoint
def import_image(path: str, aliases: list[str], disk_format: str | None,
                 container_format: str | None,
                 origin: dict[str, Any] | None) -> dict[str, Any]:
    image = _engine().import_image(
        path, aliases=tuple(aliases), disk_format=disk_format,
        container_format=container_format, origin=origin)
    return _plain(image.to_dict())


@engine_context.entrypoint
def launch(name: str, image: str, limits: dict[str, str],
           privileged: bool) -> dict[str, Any]:
    return _plain(_engine().launch(name, image, limits=limits,
                                   privileged=privileged))


@engine_context.entrypoint
def power(name: str, action: str, timeout: float | None,
          force: bool) -> None:
    engine = _engine()
    if action == "start":
        engine.start(name)
    elif action == "stop":
        engine.stop(name, timeout=timeout, force=force)
    elif action == "restart":
        engine.restart(name, timeout=timeout, force=force)
    elif action == "freeze":
        engine.freeze(name)
    elif action == "unfreeze":
        engine.unfreeze(name)
    else:
        raise ValueError(f"unknown power action {action!r}")


@engine_context.entrypoint
def delete(name: str, force: bool) -> None:
    _engine().delete(name, force=force)


@engine_context.entrypoint
def state(name: str) -> dict[str, Any]:
    return _plain(_engine().state(name))


@engine_context.entrypoint
def names() -> list[str]:
    return [record.name for record in _engine().list()]


@engine_context.entrypoint
def console_log(name: str, max_bytes: int) -> str:
    return _engine().console_log(name, max_bytes)


@engine_context.entrypoint
def prune_images(max_bytes: int | None) -> list[str]:
    return [image.fingerprint for image in _engine().prune_images(max_bytes)]
