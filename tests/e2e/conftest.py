"""End-to-end tests against the running one-host cloud (tools/cloud.sh).

The session starts the cloud with ``tools/cloud.sh up`` (idempotent: a
few seconds when it runs already), then drives it the way a user does,
with the ``openstack`` client, and checks each step on the host with a
second engine on the cloud's engine root (``recover=False``: it only
looks). Runs as root. ``NOVA_LXD_E2E_NO_UP=1`` skips the ``up``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig

REPO = Path(__file__).resolve().parents[2]
CLOUD = Path(os.environ.get("NOVA_LXD_CLOUD_DIR", "/var/lib/nova-lxd-cloud"))
OPENSTACK = CLOUD / "venv/bin/openstack"
ENGINE_ROOT = CLOUD / "lxc"
IMAGES = {"busybox": "c1.tiny", "debian-bookworm": "c1.small"}


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="end-to-end tests run the one-host "
                                       "cloud and need root")
        for item in items:
            item.add_marker(skip)


def _openrc_env() -> dict[str, str]:
    env = dict(os.environ)
    for line in (CLOUD / "openrc").read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            if key != "PATH":
                env[key] = value
    return env


class Cloud:
    """The openstack client with the cloud's admin credentials."""

    def __init__(self) -> None:
        self.env = _openrc_env()
        self.prefix = f"e2e-{uuid.uuid4().hex[:6]}"

    def run(self, *args: str, timeout: float = 300,
            check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(OPENSTACK), *args], env=self.env,
                              capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"openstack {shlex.join(args)} failed "
                f"({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.run(*args, "-f", "json", **kwargs).stdout)

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def create(self, name: str, image: str, flavor: str | None = None,
               *, wait: bool = True, extra: tuple[str, ...] = ()) -> dict:
        args = ["server", "create", "--image", image, "--flavor",
                flavor or IMAGES.get(image, "c1.tiny"), "--nic", "none",
                *extra, name]
        if wait:
            args.insert(2, "--wait")
        return self.json(*args, timeout=600)

    def show(self, server: str) -> dict:
        return self.json("server", "show", server)

    def wait(self, server: str, status: str | set[str],
             timeout: float = 300) -> dict:
        """Until the status is reached and no task is pending."""
        wanted = {status} if isinstance(status, str) else status
        deadline = time.monotonic() + timeout
        while True:
            info = self.show(server)
            if (info["status"] in wanted
                    and not info.get("OS-EXT-STS:task_state")):
                return info
            if info["status"] == "ERROR" and "ERROR" not in wanted:
                raise AssertionError(f"{server} in ERROR: "
                                     f"{info.get('fault')}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{server} still {info['status']}/"
                    f"{info.get('OS-EXT-STS:task_state')} after "
                    f"{timeout} s, wanted {sorted(wanted)}")
            time.sleep(0.5)

    def servers(self) -> list[dict]:
        return self.json("server", "list", "--name", f"^{self.prefix}-")

    def delete(self, *servers: str, wait: bool = True) -> None:
        if servers:
            self.run("server", "delete", *(("--wait",) if wait else ()),
                     *servers, timeout=600)


@pytest.fixture(scope="session")
def cloud() -> Cloud:
    if not os.environ.get("NOVA_LXD_E2E_NO_UP"):
        proc = subprocess.run(["bash", str(REPO / "tools/cloud.sh"), "up"],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            pytest.fail(f"tools/cloud.sh up failed:\n{proc.stdout[-3000:]}"
                        f"\n{proc.stderr[-3000:]}")
    c = Cloud()
    yield c
    # Whatever a failed test left.
    left = [s["ID"] for s in c.servers()]
    c.delete(*left)


@pytest.fixture(scope="session")
def observer(cloud) -> Engine:
    """A second engine on the cloud's root, looking only."""
    return Engine(EngineConfig(root=ENGINE_ROOT), recover=False)


def container_of(server: dict) -> str:
    return server["OS-EXT-SRV-ATTR:instance_name"]


# The engine leaves an empty lock file behind when it is asked to delete
# a container it does not have (nova deletes servers whose build never
# created one): ContainerManager.delete/locked create the lock file
# before they find no record, and unlink it only after a real delete.
STALE_LOCK = ("engine bug: a delete of a missing container leaves "
              "locks/container-{name}.lock")


def assert_gone(observer: Engine, name: str) -> str | None:
    """No container, rootfs directory or lock file of ``name`` is left
    (its id range was held by its record, which is gone too). Returns
    the known engine problem instead of failing on a stale lock file."""
    with pytest.raises(errors.ContainerNotFound):
        observer.get(name)
    assert not (observer.config.containers_dir / name).exists()
    lock = observer.config.locks_dir / f"container-{name}.lock"
    if lock.exists():
        assert lock.stat().st_size == 0
        return STALE_LOCK.format(name=name)
    return None


def engine_names(observer: Engine) -> set[str]:
    return {record.name for record in observer.list()}
