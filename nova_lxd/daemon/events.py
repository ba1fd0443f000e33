"""``/1.0/events``: operation, lifecycle and logging events (the
daemon's own log records, see ``log_events``) fanned out to websocket
subscribers.

Publishers may run in worker threads (engine calls): events are handed
to the event loop, which alone touches the subscriber queues.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
from typing import Any

QUEUE_SIZE = 1024


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class EventHub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._subscribers: dict[asyncio.Queue, frozenset[str]] = {}

    def subscribe(self, types: frozenset[str]) -> asyncio.Queue:
        """A queue of events whose type is in ``types`` (empty: all)."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[queue] = types
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.pop(queue, None)

    def wants(self, kind: str) -> bool:
        """Whether any subscriber takes ``kind`` (callable from any
        thread: it reads a copy of the subscriptions)."""
        return any(not types or kind in types
                   for types in tuple(self._subscribers.values()))

    def publish(self, kind: str, metadata: dict[str, Any]) -> None:
        event = {"type": kind, "timestamp": now_iso(), "metadata": metadata,
                 "location": "none", "project": "default"}
        if threading.get_ident() == self._loop_thread:
            self._deliver(event)
        else:
            self._loop.call_soon_threadsafe(self._deliver, event)

    def lifecycle(self, action: str, source: str,
                  context: dict[str, Any] | None = None) -> None:
        self.publish("lifecycle", {"action": action, "source": source,
                                   "context": context or {}})

    def _deliver(self, event: dict[str, Any]) -> None:
        for queue, types in list(self._subscribers.items()):
            if types and event["type"] not in types:
                continue
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A subscriber that does not read loses events rather
                # than holding the daemon's memory.
                pass
