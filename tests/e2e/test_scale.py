"""Twenty servers at once, then none: nothing may be left on the host."""

from __future__ import annotations

import time

from .conftest import assert_gone, engine_names

COUNT = 20


def _wait_all(cloud, names: set[str], status: set[str],
              timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        servers = [s for s in cloud.servers() if s["Name"] in names]
        pending = [s for s in servers if s["Status"] not in status]
        if len(servers) == len(names) and not pending:
            return servers
        assert time.monotonic() < deadline, (
            f"after {timeout} s: {[(s['Name'], s['Status']) for s in pending]}"
            f"; {len(servers)} of {len(names)} listed")
        time.sleep(1)


def test_twenty_at_once(cloud, observer, capsys):
    before = engine_names(observer)
    base = cloud.name("many")
    names = {f"{base}-{i}" for i in range(1, COUNT + 1)}
    t0 = time.monotonic()
    # One request for twenty servers: nova builds them concurrently.
    cloud.run("server", "create", "--image", "busybox", "--flavor",
              "c1.tiny", "--nic", "none", "--min", str(COUNT), "--max",
              str(COUNT), base)
    servers = _wait_all(cloud, names, {"ACTIVE", "ERROR"}, 300)
    elapsed = time.monotonic() - t0
    errors = {s["Name"]: cloud.show(s["ID"]).get("fault")
              for s in servers if s["Status"] == "ERROR"}
    assert not errors, errors
    started = engine_names(observer) - before
    assert len(started) == COUNT
    assert all(observer.status(name) == "RUNNING" for name in started)

    t1 = time.monotonic()
    cloud.delete(*(s["ID"] for s in servers))
    deleted = time.monotonic() - t1
    assert not [s for s in cloud.servers() if s["Name"] in names]
    for name in started:
        assert assert_gone(observer, name) is None
    assert engine_names(observer) == before
    with capsys.disabled():
        print(f"\n{COUNT} servers at once: all ACTIVE {elapsed:.1f} s "
              f"after the request (client included), all deleted in "
              f"{deleted:.1f} s")
