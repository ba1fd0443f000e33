"""A server from each Glance image through its whole life, with the
openstack client, each step checked on the container."""

from __future__ import annotations

import pytest

from .conftest import IMAGES, assert_gone, container_of


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_lifecycle(cloud, observer, image):
    name = cloud.name(image)
    server = cloud.create(name, image)
    assert server["status"] == "ACTIVE", server.get("fault")
    ctr = container_of(server)
    state = observer.state(ctr)
    assert state.status == "RUNNING"
    assert observer.get(ctr).metadata.get("nova_uuid", server["id"]) \
        == server["id"]
    hostname = observer.execute(ctr, ["cat", "/etc/hostname"])
    assert hostname.stdout.decode().strip() == name

    log = cloud.run("console", "log", "show", name, check=False)
    # systemd's UTF-8 output included (the driver returns bytes).
    assert log.returncode == 0, f"console log of {image}: {log.stderr}"
    if image == "busybox":
        assert f"nova-lxd busybox: booted {name}" in log.stdout
    else:
        assert log.stdout.strip()

    def act(action: tuple[str, ...], status: str, engine: str) -> None:
        cloud.run("server", *action, name, timeout=600)
        cloud.wait(name, status)
        assert observer.status(ctr) == engine, action

    act(("stop",), "SHUTOFF", "STOPPED")
    act(("start",), "ACTIVE", "RUNNING")

    observer.execute(ctr, ["touch", "/kept-across-reboot"])
    for reboot in (("reboot", "--wait"), ("reboot", "--hard", "--wait")):
        pid = observer.state(ctr).pid
        act(reboot, "ACTIVE", "RUNNING")
        assert observer.state(ctr).pid != pid, reboot
    assert observer.execute(
        ctr, ["test", "-e", "/kept-across-reboot"]).exit_code == 0

    pid = observer.state(ctr).pid
    for pause, unpause, status in (("pause", "unpause", "PAUSED"),
                                   ("suspend", "resume", "SUSPENDED")):
        act((pause,), status, "FROZEN")
        act((unpause,), "ACTIVE", "RUNNING")
    # Frozen, not restarted.
    assert observer.state(ctr).pid == pid

    observer.execute(ctr, ["touch", "/written-before-rebuild"])
    act(("rebuild", "--image", image, "--wait"), "ACTIVE", "RUNNING")
    assert observer.execute(
        ctr, ["test", "-e", "/written-before-rebuild"]).exit_code != 0

    cloud.delete(name)
    assert assert_gone(observer, ctr) is None
