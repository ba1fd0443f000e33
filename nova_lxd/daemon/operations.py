"""Background operations (``/1.0/operations``).

The engine blocks (liblxc, file copies, locks held by other processes),
so every engine call of an operation runs in a worker thread; the event
loop only tracks the operation's status, wakes waiters and publishes
events. Finished operations are kept a while so that clients can read
their result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from oslo_log import log as logging

from nova_lxd.daemon import errors
from nova_lxd.daemon.events import EventHub, now_iso

LOG = logging.getLogger(__name__)

RUNNING, SUCCESS, FAILURE, CANCELLED = 103, 200, 400, 401
PENDING, CANCELLING = 105, 104
STATUS = {100: "Operation created", 103: "Running", 104: "Cancelling",
          105: "Pending", 200: "Success", 400: "Failure", 401: "Cancelled"}
KEEP_SECONDS = 300
MAX_WORKERS = 64


class Operation:
    def __init__(self, kind: str, description: str,
                 resources: dict[str, list[str]],
                 metadata: dict[str, Any] | None = None,
                 may_cancel: bool = False) -> None:
        self.id = str(uuid.uuid4())
        self.kind = kind
        self.description = description
        self.resources = resources
        self.metadata = metadata
        self.may_cancel = may_cancel
        self.status_code = PENDING
        self.err = ""
        self.created_at = self.updated_at = now_iso()
        self.finished_at: float | None = None
        self.done = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.on_cancel: Callable[[], None] | None = None

    @property
    def finished(self) -> bool:
        return self.done.is_set()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "class": self.kind,
                "description": self.description,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
                "status": STATUS[self.status_code],
                "status_code": self.status_code,
                "resources": self.resources, "metadata": self.metadata,
                "may_cancel": self.may_cancel and not self.finished,
                "err": self.err, "location": "none"}


class Operations:
    def __init__(self, events: EventHub) -> None:
        self.events = events
        self._ops: dict[str, Operation] = {}
        self.executor = concurrent.futures.ThreadPoolExecutor(
            MAX_WORKERS, thread_name_prefix="nlxd-op")
        self.accepting = True

    # -- creation ----------------------------------------------------------

    def task(self, description: str, resources: dict[str, list[str]],
             fn: Callable[[], dict[str, Any] | None]) -> Operation:
        """An operation running ``fn`` in a worker thread; what ``fn``
        returns becomes the operation's metadata."""
        op = self._new("task", description, resources)

        async def body() -> dict[str, Any] | None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, fn)

        op.task = asyncio.ensure_future(self._run(op, body))
        return op

    def task_async(self, description: str,
                   resources: dict[str, list[str]],
                   body: Callable[[Operation], Awaitable[
                       dict[str, Any] | None]]) -> Operation:
        """A task whose body runs on the event loop (it talks to another
        daemon, and calls the engine through ``Context.call``)."""
        op = self._new("task", description, resources)
        op.task = asyncio.ensure_future(self._run(op, lambda: body(op)))
        return op

    def websocket(self, description: str, resources: dict[str, list[str]],
                  metadata: dict[str, Any],
                  body: Callable[[Operation], Awaitable[
                      dict[str, Any] | None]],
                  on_cancel: Callable[[], None] | None = None
                  ) -> Operation:
        """An operation whose clients connect websockets (exec)."""
        op = self._new("websocket", description, resources, metadata,
                       may_cancel=on_cancel is not None)
        op.on_cancel = on_cancel
        op.task = asyncio.ensure_future(self._run(op, lambda: body(op)))
        return op

    def new_secret(self) -> str:
        return secrets.token_hex(32)

    def _new(self, kind: str, description: str,
             resources: dict[str, list[str]],
             metadata: dict[str, Any] | None = None,
             may_cancel: bool = False) -> Operation:
        if not self.accepting:
            raise errors.ApiError("The daemon is shutting down", 503)
        self._prune()
        op = Operation(kind, description, resources, metadata, may_cancel)
        self._ops[op.id] = op
        self._changed(op, RUNNING)
        return op

    async def _run(self, op: Operation,
                   body: Callable[[], Awaitable[dict[str, Any] | None]]
                   ) -> None:
        try:
            result = await body()
            if result is not None:
                op.metadata = {**(op.metadata or {}), **result}
        except asyncio.CancelledError:
            op.err = "Operation cancelled"
            self._finish(op, CANCELLED)
            return
        except Exception as exc:  # noqa: BLE001 - the client gets it
            if errors.status_of(exc) == 500 and not isinstance(
                    exc, (errors.ApiError,)):
                LOG.exception("Operation %s (%s) failed", op.id,
                              op.description)
            op.err = errors.message_of(exc)
            self._finish(op, CANCELLED if op.status_code == CANCELLING
                         else FAILURE)
            return
        self._finish(op, CANCELLED if op.status_code == CANCELLING
                     else SUCCESS)

    def _finish(self, op: Operation, code: int) -> None:
        op.finished_at = time.monotonic()
        self._changed(op, code)
        op.done.set()

    def _changed(self, op: Operation, code: int) -> None:
        op.status_code = code
        op.updated_at = now_iso()
        self.events.publish("operation", op.to_dict())

    def _prune(self) -> None:
        now = time.monotonic()
        for op_id, op in list(self._ops.items()):
            if op.finished_at is not None and \
                    now - op.finished_at > KEEP_SECONDS:
                del self._ops[op_id]

    # -- queries -----------------------------------------------------------

    def get(self, op_id: str) -> Operation:
        try:
            return self._ops[op_id]
        except KeyError:
            raise errors.NotFound(f"Operation {op_id} not found") from None

    def all(self) -> list[Operation]:
        return list(self._ops.values())

    async def wait(self, op_id: str, timeout: float) -> Operation:
        """The operation once done, or as it is after ``timeout`` s
        (negative: no limit)."""
        op = self.get(op_id)
        try:
            await asyncio.wait_for(op.done.wait(),
                                   None if timeout < 0 else timeout)
        except TimeoutError:
            pass
        return op

    def cancel(self, op_id: str) -> Operation:
        op = self.get(op_id)
        if op.finished:
            raise errors.BadRequest("The operation has already finished")
        if not op.may_cancel:
            raise errors.Forbidden("This operation cannot be cancelled")
        self._changed(op, CANCELLING)
        if op.on_cancel is not None:
            op.on_cancel()
        return op

    # -- shutdown ----------------------------------------------------------

    async def drain(self, timeout: float) -> None:
        """Refuse new operations, let running ones finish for up to
        ``timeout`` s, then cancel those that can be cancelled."""
        self.accepting = False
        running = [op for op in self._ops.values() if not op.finished]
        if running:
            LOG.info("Waiting up to %s s for %d operations", timeout,
                     len(running))
            await asyncio.wait([asyncio.ensure_future(op.done.wait())
                                for op in running], timeout=timeout)
        for op in self._ops.values():
            if not op.finished and op.may_cancel:
                self.cancel(op.id)
        left = [op for op in self._ops.values() if not op.finished]
        if left:
            await asyncio.wait([asyncio.ensure_future(op.done.wait())
                                for op in left], timeout=5)
        left = [op.description for op in self._ops.values()
                if not op.finished]
        if left:
            LOG.warning("Exiting with unfinished operations (the engine "
                        "recovers them on the next start): %s",
                        ", ".join(left))
        self.executor.shutdown(wait=False, cancel_futures=True)
