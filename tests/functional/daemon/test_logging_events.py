"""``GET /1.0/events?type=logging`` through pylxd's ``client.events``:
the daemon's own log records arrive as LXD's logging events."""

from __future__ import annotations

import json
import time

import pylxd
from pylxd.client import EventType


def test_logging_events_with_pylxd(client, busybox_tarball):
    image = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    ws = client.events(event_types={EventType.Logging})
    ws.connect()
    try:
        time.sleep(0.2)
        client.instances.create(
            {"name": "logged", "source": {"type": "image",
                                          "fingerprint": image.fingerprint}},
            wait=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                "Created container logged" in m["metadata"]["message"]
                for m in ws.messages):
            ws.once()
    finally:
        ws.close()
    assert ws.messages, "no logging event"
    assert {m["type"] for m in ws.messages} == {"logging"}, \
        json.dumps(ws.messages)[:2000]
    created = next(m for m in ws.messages
                   if "Created container logged" in m["metadata"]["message"])
    assert created["metadata"]["level"] == "info"
    assert created["metadata"]["context"]["logger"] == \
        "nova_lxd.engine.containers.manager"
    assert created["timestamp"]
    client.instances.get("logged").delete(wait=True)
