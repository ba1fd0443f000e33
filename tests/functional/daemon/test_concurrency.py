"""Many API operations at once, and the daemon sharing the engine's root
with another engine user (the Nova driver's privsep daemon does that on
a compute host)."""

from __future__ import annotations

import concurrent.futures
import random

import pylxd
from pylxd.exceptions import LXDAPIException

from nova_lxd.engine.api import Engine
from tests.functional.conftest import make_config

NAMES = [f"c{i}" for i in range(10)]


def test_hundred_mixed_operations_at_once(daemon, busybox_tarball):
    client = pylxd.Client(endpoint=str(daemon.socket))
    image = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    for name in NAMES[:5]:
        client.instances.create(
            {"name": name, "source": {"type": "image",
                                      "fingerprint": image.fingerprint},
             "start": True}, wait=True)
    def one(i: int) -> str:
        """A random operation on a random container; clean API errors
        (a container in the wrong state, already gone) are fine."""
        rng = random.Random(i)
        c = pylxd.Client(endpoint=str(daemon.socket))
        name = rng.choice(NAMES)
        action = rng.choice(["create", "start", "stop", "freeze",
                             "unfreeze", "exec", "state", "list",
                             "snapshot", "delete"])
        try:
            if action == "create":
                c.instances.create(
                    {"name": name, "source": {
                        "type": "image", "fingerprint": image.fingerprint}},
                    wait=True)
            elif action == "list":
                c.instances.all()
            else:
                inst = c.instances.get(name)
                if action == "exec":
                    inst.execute(["true"])
                elif action == "state":
                    inst.state()
                elif action == "snapshot":
                    inst.snapshots.create(f"s{i}", wait=True)
                elif action == "delete":
                    if inst.status != "Stopped":
                        inst.stop(force=True, wait=True)
                    inst.delete(wait=True)
                else:
                    getattr(inst, action)(wait=True)
        except LXDAPIException as exc:
            status = exc.response.status_code
            assert status < 500, f"{action} {name}: {exc}"
            return f"{action}:{status}"
        except pylxd.exceptions.NotFound:
            return f"{action}:404"
        return f"{action}:ok"

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(one, i) for i in range(100)]
        done, pending = concurrent.futures.wait(futures, timeout=300)
    assert not pending, "operations still running after 5 minutes"
    outcomes = [f.result() for f in done]  # re-raises assertion errors
    # Listing never depends on the others' timing: it always works.
    lists = [o for o in outcomes if o.startswith("list:")]
    assert lists and all(o == "list:ok" for o in lists), outcomes
    assert any(o.endswith(":ok") and not o.startswith("list:")
               for o in outcomes), outcomes
    # The daemon still answers, and every container it lists is usable.
    for inst in client.instances.all():
        assert inst.status in ("Running", "Stopped", "Frozen"), inst.name


def test_daemon_and_another_engine_share_one_root(daemon, busybox_tarball):
    client = pylxd.Client(endpoint=str(daemon.socket))
    image = pylxd.models.Image.create(client, busybox_tarball.read_bytes())
    other = Engine(make_config(daemon.root), recover=False)

    def from_daemon(name: str) -> None:
        client.instances.create(
            {"name": name, "source": {"type": "image",
                                      "fingerprint": image.fingerprint},
             "start": True}, wait=True)

    def from_engine(name: str) -> None:
        other.launch(name, image.fingerprint)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        jobs = [pool.submit(from_daemon, f"d{i}") for i in range(4)]
        jobs += [pool.submit(from_engine, f"e{i}") for i in range(4)]
        for job in jobs:
            job.result(timeout=300)
    names = {i.name for i in client.instances.all()}
    assert names == {f"d{i}" for i in range(4)} | {f"e{i}" for i in
                                                  range(4)}
    # Distinct id ranges whoever created them (one allocation lock).
    bases = {other.get(n).idmap.uid_base for n in names}
    assert len(bases) == len(names)
    # Each side sees and drives the other's containers.
    client.instances.get("e0").stop(force=True, wait=True)
    assert other.status("e0") == "STOPPED"
    other.delete("d0", force=True)
    assert "d0" not in {i.name for i in client.instances.all()}
