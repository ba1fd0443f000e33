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


def test_sigkill_during_creates(daemon, client, busybox_tarball):
    img = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    names = [f"z{i}" for i in range(6)]
    for name in names:
        client.api.instances.post(json={
            "name": name, "source": {"type": "image",
                                     "fingerprint": img.fingerprint}})
    time.sleep(0.3)
    daemon.stop(signal.SIGKILL)
    restarted = DaemonProcess(daemon.root).start()
    try:
        again = pylxd.Client(endpoint=str(restarted.socket))
        present = {i.name for i in again.instances.all()}
        assert present <= set(names)
        on_disk = {p.name for p in (daemon.root / "containers").iterdir()
                   if p.is_dir()}
        assert on_disk == present  # nothing half made is left behind
        for name in present:  # each one that is there works
            inst = again.instances.get(name)
            inst.start(wait=True)
            inst.stop(wait=True)
            inst.delete(wait=True)
        # Names of lost creates are free again.
        for name in set(names) - present:
            again.instances.create(
                {"name": name, "source": {"type": "image",
                                          "fingerprint": img.fingerprint}},
                wait=True).delete(wait=True)
    finally:
        assert restarted.stop() == 0
