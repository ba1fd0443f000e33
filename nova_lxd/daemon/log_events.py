"""The daemon's own log records as ``logging`` events (LXD's ``lxc
monitor --type=logging``).

A ``logging.Handler`` on the root logger hands each record to the event
hub. It must never hurt logging itself:

* nothing is formatted unless someone subscribed to logging events;
* it never blocks: the hub queues with ``put_nowait`` (a slow subscriber
  loses events) or ``call_soon_threadsafe`` from worker threads;
* it never recurses: a record emitted while a record is being published
  (on the same thread) is dropped, and every error is swallowed rather
  than reported through logging;
* messages are cut at ``MAX_MESSAGE`` characters.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from nova_lxd.daemon.events import EventHub

KIND = "logging"
MAX_MESSAGE = 16 * 1024
_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info",
           logging.WARNING: "warning", logging.ERROR: "error",
           logging.CRITICAL: "fatal"}


class EventLogHandler(logging.Handler):
    """Feeds log records to ``hub`` as ``logging`` events."""

    def __init__(self, hub: EventHub) -> None:
        super().__init__()
        self.hub = hub
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False):
            return  # logged while publishing: would loop
        self._local.busy = True
        try:
            if self.hub.wants(KIND):
                self.hub.publish(KIND, event_metadata(record))
        except Exception:  # noqa: BLE001 - logging must go on
            pass
        finally:
            self._local.busy = False

    def handleError(self, record: logging.LogRecord) -> None:
        """Never report our own failures through logging or stderr."""


def event_metadata(record: logging.LogRecord) -> dict[str, Any]:
    """LXD's ``EventLogging``: message, level and a string context."""
    message = record.getMessage()
    context = {"logger": record.name, "module": record.module,
               "line": str(record.lineno)}
    if record.exc_info:
        context["exception"] = "".join(
            traceback.format_exception(*record.exc_info))[-MAX_MESSAGE:]
    return {"message": message[:MAX_MESSAGE],
            "level": _LEVELS.get(record.levelno,
                                 record.levelname.lower()),
            "context": context}


def install(hub: EventHub) -> EventLogHandler:
    """Attach a handler for ``hub`` to the root logger (``remove`` it when
    the hub goes)."""
    handler = EventLogHandler(hub)
    logging.getLogger().addHandler(handler)
    return handler


def remove(handler: EventLogHandler) -> None:
    logging.getLogger().removeHandler(handler)
