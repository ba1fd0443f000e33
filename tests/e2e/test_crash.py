"""nova-compute SIGKILLed while servers boot, then started again: every
server ends ACTIVE or ERROR with a reason, nothing is orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .conftest import CLOUD, REPO, assert_gone, engine_names

COUNT = 6


def _compute_pid() -> int:
    return int((CLOUD / "run/nova-compute.pid").read_text())


def test_sigkill_compute_while_booting(cloud, observer, capsys):
    before = engine_names(observer)
    base = cloud.name("crash")
    names = {f"{base}-{i}" for i in range(1, COUNT + 1)}
    cloud.run("server", "create", "--image", "busybox", "--flavor",
              "c1.tiny", "--nic", "none", "--min", str(COUNT), "--max",
              str(COUNT), base)
    # Kill as soon as the first container exists: the others are being
    # built, spawned, or still queued for this compute.
    deadline = time.monotonic() + 120
    while not engine_names(observer) - before:
        assert time.monotonic() < deadline, "no container was created"
        time.sleep(0.05)
    os.kill(_compute_pid(), signal.SIGKILL)
    killed_at = time.monotonic()

    # `up` starts what is not running: nova-compute alone.
    up = subprocess.run(["bash", str(REPO / "tools/cloud.sh"), "up"],
                        capture_output=True, text=True, timeout=900)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]

    deadline = time.monotonic() + 300
    while True:
        servers = [s for s in cloud.servers() if s["Name"] in names]
        settled = [cloud.show(s["ID"]) for s in servers
                   if s["Status"] in ("ACTIVE", "ERROR")]
        settled = [s for s in settled if not s.get("OS-EXT-STS:task_state")]
        if len(settled) == COUNT:
            break
        assert time.monotonic() < deadline, (
            f"not settled {time.monotonic() - killed_at:.0f} s after the "
            f"kill: {[(s['Name'], s['Status']) for s in servers]}")
        time.sleep(1)

    with capsys.disabled():
        print("\nafter SIGKILL of nova-compute and a restart: " + ", ".join(
            f"{s['name']} {s['status']}"
            + (f" ({(s.get('fault') or {}).get('message')})"
               if s["status"] == "ERROR" else "") for s in settled))
    problems = []
    containers = {s["OS-EXT-SRV-ATTR:instance_name"] for s in settled}
    # Nothing on the host that no server owns.
    assert engine_names(observer) - before <= containers
    for server in settled:
        ctr = server["OS-EXT-SRV-ATTR:instance_name"]
        if server["status"] == "ACTIVE":
            assert observer.status(ctr) == "RUNNING", server["name"]
        elif not (server.get("fault") or {}).get("message"):
            # The driver adds the fault (process_instances_at_startup).
            problems.append(f"{server['name']} in ERROR with no fault")
    cloud.delete(*(s["id"] for s in settled))
    problems += [p for p in (assert_gone(observer, ctr)
                             for ctr in sorted(containers)) if p]
    assert engine_names(observer) == before
    assert not problems, problems
