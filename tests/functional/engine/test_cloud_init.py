"""Real cloud-init in a real container finds nova's metadata.

The image is Debian minbase with systemd and cloud-init
(``cloud_init_rootfs``; the first build takes about 1.5 minutes and is
cached). The container is created with ``seed_files`` from a nova
instance, exactly as the driver will, and nothing else: no network, no
metadata service, no config-drive device.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import time
from pathlib import Path

import pytest
from nova.network import model as network_model

from nova_lxd.testing.debootstrap import cloud_init_rootfs
from nova_lxd.virt.metadata import SEED_DIR, seed_files
from tests.nova_instance import UUID, make_instance, offline

pytestmark = pytest.mark.skipif(shutil.which("debootstrap") is None,
                                reason="debootstrap is not installed")

KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8m3cloudInitFunctionalKey0"
       " tester@example")
MARKER = "/var/tmp/user-data-ran"
USER_DATA = f"#!/bin/sh\necho \"ran as $(id -un)\" > {MARKER}\n".encode()
BOOT_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def cloud_init_tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cloud-init") / "rootfs.tar"
    with tarfile.open(out, "w") as tar:
        tar.add(cloud_init_rootfs(), arcname=".")
    return out


def run(engine, name: str, *argv: str, timeout: float = 30.0) -> str:
    result = engine.execute(name, list(argv), timeout=timeout)
    assert result.exit_code == 0, (argv, result.stdout, result.stderr)
    return result.stdout.decode()


def wait_for_cloud_init(engine, name: str) -> dict:
    """``/run/cloud-init/result.json``, written when the last stage ends;
    polled (not ``status --wait``) so a boot that never runs cloud-init
    fails with the console log instead of hanging."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        result = engine.execute(name, ["cat", "/run/cloud-init/result.json"])
        if result.exit_code == 0:
            return json.loads(result.stdout)
        time.sleep(1)
    status = engine.execute(name, ["cloud-init", "status", "--long"])
    pytest.fail(f"cloud-init did not finish in {BOOT_TIMEOUT:.0f} s:\n"
                f"{status.stdout.decode()}{status.stderr.decode()}\n"
                f"console:\n{engine.console_log(name)[-4000:]}")


def test_cloud_init_uses_the_seeded_config_drive(engine, cloud_init_tarball):
    engine.import_image(cloud_init_tarball, aliases=("cloud-init",))
    instance = make_instance(hostname="ci-host-1", public_key=KEY,
                             user_data=USER_DATA)
    with offline():
        files = seed_files(instance, network_model.NetworkInfo([]),
                           [("/etc/nova-injected", b"injected\n")],
                           "s3cret")
    started = time.monotonic()
    engine.launch("cinit", "cloud-init", files=files)

    result = wait_for_cloud_init(engine, "cinit")
    booted = time.monotonic() - started
    log = run(engine, "cinit", "tail", "-n", "60",
              "/var/log/cloud-init.log")
    assert result["v1"]["errors"] == [], log
    assert result["v1"]["datasource"].startswith("DataSourceConfigDrive"), \
        result
    assert f"source={SEED_DIR}" in result["v1"]["datasource"], result

    # ds-identify (the systemd generator) found it too, and enabled only it.
    generated = run(engine, "cinit", "cat", "/run/cloud-init/cloud.cfg")
    assert "datasource_list: [ ConfigDrive, None ]" in generated, generated
    assert run(engine, "cinit", "cloud-init", "query",
               "v1.instance_id").strip() == UUID
    assert run(engine, "cinit", "cloud-init", "query",
               "v1.subplatform").strip() == f"seed-dir ({SEED_DIR})"

    assert run(engine, "cinit", "hostname").strip() == "ci-host-1"
    user_keys = run(engine, "cinit", "cat",
                    "/home/debian/.ssh/authorized_keys")
    assert KEY in user_keys
    assert KEY in run(engine, "cinit", "cat", "/root/.ssh/authorized_keys")
    assert run(engine, "cinit", "cat", MARKER) == "ran as root\n"
    assert run(engine, "cinit", "cat", "/etc/nova-injected") == "injected\n"
    assert booted < BOOT_TIMEOUT
