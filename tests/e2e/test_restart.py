"""Every service SIGKILLed, then ``tools/cloud.sh up``: the same cloud
comes back with its servers, whose containers never stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .conftest import CLOUD, REPO, assert_gone, container_of


def _kill_all() -> list[str]:
    killed = []
    for pidfile in sorted((CLOUD / "run").glob("*.pid")):
        pid = int(pidfile.read_text())
        try:
            # Each service is the leader of its own session and group.
            os.killpg(pid, signal.SIGKILL)
            killed.append(pidfile.stem)
        except ProcessLookupError:
            pass
    return killed


def test_up_after_every_service_was_killed(cloud, observer):
    name = cloud.name("survivor")
    server = cloud.create(name, "busybox")
    ctr = container_of(server)
    pid = observer.state(ctr).pid

    killed = _kill_all()
    assert {"keystone", "nova-api", "nova-compute", "rabbitmq"} <= set(
        killed)
    time.sleep(1)
    # The container does not depend on any service.
    assert observer.state(ctr).pid == pid

    up = subprocess.run(["bash", str(REPO / "tools/cloud.sh"), "up"],
                        capture_output=True, text=True, timeout=900)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    status = subprocess.run(["bash", str(REPO / "tools/cloud.sh"),
                             "status"], capture_output=True, text=True)
    assert status.returncode == 0, status.stdout

    again = cloud.wait(name, "ACTIVE")
    assert again["id"] == server["id"]
    assert observer.state(ctr).pid == pid
    # And the cloud still works on it.
    cloud.run("server", "stop", name)
    cloud.wait(name, "SHUTOFF")
    assert observer.status(ctr) == "STOPPED"
    cloud.delete(name)
    assert assert_gone(observer, ctr) is None
