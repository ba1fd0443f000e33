"""The aiohttp application: middlewares, routes and the shared context."""

from __future__ import annotations

import asyncio
import weakref

from aiohttp import web

from nova_lxd.daemon import log_events, middleware, routes
from nova_lxd.daemon.auth.trust import TrustStore
from nova_lxd.daemon.context import CONTEXT, Context, Settings
from nova_lxd.daemon.events import EventHub
from nova_lxd.daemon.handlers.events import WEBSOCKETS, close_streams
from nova_lxd.daemon.handlers.exec import SESSIONS
from nova_lxd.daemon.operations import Operations
from nova_lxd.engine.api import Engine


def build_app(engine: Engine, settings: Settings) -> web.Application:
    """The API for ``engine``; call inside the running event loop."""
    app = web.Application(
        client_max_size=settings.max_body_size,
        middlewares=[middleware.error_middleware,
                     middleware.auth_middleware])
    events = EventHub(asyncio.get_running_loop())
    app[CONTEXT] = Context(engine=engine, settings=settings,
                           trust=TrustStore(settings.state_dir),
                           events=events, operations=Operations(events))
    app[SESSIONS] = {}
    app[WEBSOCKETS] = weakref.WeakKeyDictionary()
    routes.add_routes(app)
    app.on_shutdown.append(close_streams)
    handler = log_events.install(events)

    async def stop_logging_events(_app: web.Application) -> None:
        log_events.remove(handler)

    app.on_cleanup.append(stop_logging_events)
    return app
