"""Stopping a container while a caller holds an attached command.

The attached command is a child of the caller; when the container's init
dies the kernel waits for that child to be reaped. A stop that held the
interpreter lock while it waited would keep the caller's other threads
from reaping it: a deadlock (it froze the daemon). The stop must leave
the caller free to run.
"""

from __future__ import annotations

import os
import threading
import time


def test_stop_while_an_attached_command_runs(engine, image):
    engine.launch("busy", "busybox")
    r, w = os.pipe()
    pid = engine.attach("busy", ["sleep", "1000"], stdin=r, stdout=w,
                        stderr=w)
    os.close(r)
    os.close(w)
    done = threading.Event()
    errors_seen: list[BaseException] = []

    def stop() -> None:
        try:
            engine.stop("busy", force=True)
        except BaseException as exc:  # reported below
            errors_seen.append(exc)
        finally:
            done.set()

    threading.Thread(target=stop, daemon=True).start()
    reaped = False
    deadline = time.monotonic() + 30
    while not done.is_set() and time.monotonic() < deadline:
        if not reaped and os.waitpid(pid, os.WNOHANG)[0] == pid:
            reaped = True
        time.sleep(0.01)
    assert done.is_set(), "stop did not return: the caller was blocked"
    assert not errors_seen, errors_seen
    assert engine.status("busy") == "STOPPED"
