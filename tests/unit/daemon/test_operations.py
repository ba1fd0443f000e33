"""Operations: worker-thread tasks, failures as messages, waits,
cancellation and the shutdown drain; events for every change."""

from __future__ import annotations

import asyncio
import threading

import pytest

from nova_lxd.daemon import errors
from nova_lxd.daemon.events import EventHub
from nova_lxd.daemon.operations import Operations
from nova_lxd.engine import errors as engine_errors


def run(coro_fn):
    async def main():
        hub = EventHub(asyncio.get_running_loop())
        return await coro_fn(Operations(hub), hub)
    return asyncio.run(main())


def test_task_runs_off_the_loop_and_reports():
    async def scenario(ops, hub):
        events = hub.subscribe(frozenset({"operation"}))
        loop_thread = threading.get_ident()
        op = ops.task("t", {}, lambda: {"thread": threading.get_ident()})
        await ops.wait(op.id, 5)
        assert op.metadata["thread"] != loop_thread
        codes = []
        while not events.empty():
            codes.append((await events.get())["metadata"]["status_code"])
        return op.to_dict(), codes

    data, codes = run(scenario)
    assert (data["status"], data["status_code"], data["err"]) == (
        "Success", 200, "")
    assert codes == [103, 200]


@pytest.mark.parametrize("exc,message", [
    (engine_errors.ContainerNotFound(name="c1"), "Container c1 not found."),
    (RuntimeError("/etc/shadow"), "Internal server error")])
def test_failures_keep_only_safe_messages(exc, message):
    def fail():
        raise exc

    async def scenario(ops, hub):
        op = ops.task("t", {}, fail)
        await ops.wait(op.id, 5)
        return op.to_dict()

    data = run(scenario)
    assert (data["status"], data["err"]) == ("Failure", message)


def test_wait_timeout_and_cancel_rules():
    async def scenario(ops, hub):
        gate = threading.Event()
        op = ops.task("slow", {}, lambda: (gate.wait(5), None)[1])
        early = (await ops.wait(op.id, 0.05)).to_dict()
        with pytest.raises(errors.Forbidden):
            ops.cancel(op.id)  # engine calls cannot be cancelled
        gate.set()
        await ops.wait(op.id, 5)
        with pytest.raises(errors.BadRequest):
            ops.cancel(op.id)  # finished
        with pytest.raises(errors.NotFound):
            ops.get("nope")

        stop = asyncio.Event()

        async def body(op):
            await stop.wait()
            return {"return": 0}

        ws = ops.websocket("ws", {}, {"fds": {}}, body,
                           on_cancel=stop.set)
        assert ws.to_dict()["may_cancel"]
        ops.cancel(ws.id)
        await ops.wait(ws.id, 5)
        return early, ws.to_dict()

    early, cancelled = run(scenario)
    assert early["status"] == "Running"
    assert cancelled["status"] == "Cancelled"


def test_a_bad_result_still_finishes_the_operation():
    async def scenario(ops, hub):
        op = ops.task("t", {}, lambda: ["not", "a", "mapping"])
        await ops.wait(op.id, 5)
        return op.to_dict()

    data = run(scenario)
    assert (data["status"], data["err"]) == ("Failure",
                                             "Internal server error")


def test_drain_refuses_new_work_and_waits():
    async def scenario(ops, hub):
        gate = threading.Event()
        op = ops.task("slow", {}, lambda: (gate.wait(0.3), None)[1])
        await ops.drain(5)
        with pytest.raises(errors.ApiError) as info:
            ops.task("late", {}, lambda: None)
        return op.to_dict(), info.value.status

    data, status = run(scenario)
    assert data["status"] == "Success"
    assert status == 503
