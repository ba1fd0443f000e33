"""The daemon's own life: SIGTERM lets in-flight operations finish and
exits 0; after SIGKILL a restarted daemon serves the same containers."""

from __future__ import annotations

import signal
import time

import pylxd

from tests.functional.daemon.conftest import DaemonProcess


def _launch(client, image, name):
    client.instances.create(
        {"name": name, "source": {"type": "image", "fingerprint": image},
         "start": True}, wait=True)


def test_sigterm_finishes_operations(daemon, client, busybox_tarball):
    img = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    _launch(client, img.fingerprint, "t1")
    response = client.api.instances["t1"].state.put(
        json={"action": "stop", "timeout": 3, "force": False})
    assert response.status_code == 202
    time.sleep(0.2)
    assert daemon.stop(signal.SIGTERM) == 0
    assert "Stopped container t1" in daemon.log.read_text() or \
        "t1" in daemon.log.read_text()
    restarted = DaemonProcess(daemon.root).start()
    try:
        again = pylxd.Client(endpoint=str(restarted.socket))
        assert again.instances.get("t1").status == "Stopped"
    finally:
        assert restarted.stop() == 0


def test_sigkill_then_restart(daemon, client, busybox_tarball):
    img = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    _launch(client, img.fingerprint, "k1")
    client.api.instances.post(json={
        "name": "k2", "source": {"type": "image",
                                 "fingerprint": img.fingerprint}})
    daemon.stop(signal.SIGKILL)
    restarted = DaemonProcess(daemon.root).start()
    try:
        again = pylxd.Client(endpoint=str(restarted.socket))
        names = {i.name: i.status for i in again.instances.all()}
        assert names.get("k1") == "Running"
        # k2 was created or rolled back by the engine's recovery; never
        # half there.
        assert set(names) <= {"k1", "k2"}
        result = again.instances.get("k1").execute(["true"])
        assert result.exit_code == 0
        again.instances.get("k1").stop(wait=True)
    finally:
        assert restarted.stop() == 0
