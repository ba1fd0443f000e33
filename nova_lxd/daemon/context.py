"""What every handler needs, held by the aiohttp application."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from nova_lxd.daemon.auth.trust import TrustStore
from nova_lxd.daemon.events import EventHub
from nova_lxd.daemon.operations import Operations
from nova_lxd.engine.api import Engine

T = TypeVar("T")


@dataclasses.dataclass
class Settings:
    state_dir: Path
    max_body_size: int = 1024 * 1024
    max_upload_size: int = 8 * 1024 ** 3
    trust_token_ttl: int = 3600
    https_address: str = ""
    addresses: list[str] = dataclasses.field(default_factory=list)
    """Where clients reach the HTTPS API (wildcards expanded)."""
    server_certificate: str = ""
    """PEM of the HTTPS certificate ('' while HTTPS is off)."""
    server_fingerprint: str = ""


@dataclasses.dataclass
class Context:
    engine: Engine
    settings: Settings
    trust: TrustStore
    events: EventHub
    operations: Operations

    async def call(self, fn: Callable[..., T], *args: Any,
                   **kwargs: Any) -> T:
        """Run a blocking engine call in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.operations.executor, lambda: fn(*args, **kwargs))


CONTEXT: web.AppKey[Context] = web.AppKey("context", Context)


def ctx(request: web.Request) -> Context:
    return request.app[CONTEXT]
