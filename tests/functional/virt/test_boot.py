"""Boot and delete a server through the whole nova stack, for real.

The image in the Glance fixture holds the bytes of a busybox root file
system tarball, uploaded as Glance has no rootfs format: raw/bare.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

from nova_lxd.engine import errors
from nova_lxd.engine.limits import parse_cpuset
from nova_lxd.testing import disks
from nova_lxd.testing.busybox import (
    build_busybox_rootfs,
)
from tests.functional.engine.helpers import cgroup_file
from tests.functional.privsep.test_engine_daemon import ancestors
from tests.functional.virt import base


class BootTest(base.LXCIntegratedTestBase):

    def test_boot_and_delete(self) -> None:
        image_id = self.upload_busybox()
        server = self._create_server(image_uuid=image_id, networks="none")
        self.assertEqual("ACTIVE", server["status"])

        name = self.container_of(server)
        observer = self.observer_engine()
        self.assertEqual("RUNNING", observer.state(name).status)
        flavor = self.api.get_flavor(server["flavor"]["id"])
        self.assertEqual({"limits.cpu": str(flavor["vcpus"]),
                          "limits.memory": f"{flavor['ram']}MiB"},
                         observer.get(name).limits)
        # ...and in the container's cgroups, read on the host.
        pid = observer.state(name).pid
        try:
            memory = cgroup_file(pid, "memory", "memory.limit_in_bytes")
        except FileNotFoundError:
            memory = cgroup_file(pid, "memory", "memory.max")
        self.assertEqual(flavor["ram"] * 1024 ** 2, int(memory))
        cpus = parse_cpuset(cgroup_file(pid, "cpuset", "cpuset.cpus"))
        self.assertEqual(flavor["vcpus"], len(cpus))
        # The hostname is nova's (from the server's name), not the
        # container's name.
        hostname = server["OS-EXT-SRV-ATTR:hostname"]
        for command in (["hostname"], ["cat", "/etc/hostname"]):
            result = observer.execute(name, command)
            self.assertEqual(hostname, result.stdout.decode().strip())
        self.assertEqual(server["id"], observer.get(name).metadata[
            "nova.instance_uuid"])
        self.assertEqual([server["id"]],
                         self.compute.driver.list_instance_uuids())
        self.assertIn(f"booted {hostname}", self._console_when(
            server, f"booted {hostname}"))

        self._delete_server(server)
        self.assertRaises(errors.ContainerNotFound, observer.get, name)
        self.assertEqual([], self.compute.driver.list_instance_uuids())


    def test_boot_from_qcow2(self) -> None:
        with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
            work = Path(tmp)
            fs = disks.make_filesystem(
                build_busybox_rootfs(work / "rootfs"), work / "root.ext4",
                "ext4")
            raw = disks.make_partitioned_disk(fs, work / "disk.raw", "gpt")
            data = disks.convert(raw, work / "disk.qcow2", "qcow2"
                                 ).read_bytes()
        meta = {"name": "busybox-qcow2", "disk_format": "qcow2",
                "container_format": "bare", "status": "active",
                "visibility": "public", "min_ram": 0, "min_disk": 0,
                "properties": {}}
        image_id = self.glance.create(None, meta,
                                      data=io.BytesIO(data))["id"]
        server = self._create_server(image_uuid=image_id, networks="none")
        self.assertEqual("ACTIVE", server["status"])
        name = self.container_of(server)
        observer = self.observer_engine()
        image = observer.get_image(observer.get(name).image)
        self.assertEqual("qcow2", image.properties["source_format"])
        self.assertEqual("ext4", image.properties["root_filesystem"])
        result = observer.execute(name, ["cat", "/etc/os-release"])
        self.assertIn("ID=busybox", result.stdout.decode())
        self._delete_server(server)

    def test_stop_start_reboot_pause(self) -> None:
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     networks="none")
        name = self.container_of(server)
        observer = self.observer_engine()

        self.api.post_server_action(server["id"], {"os-stop": None})
        self._wait_for_state_change(server, "SHUTOFF")
        self.assertEqual("STOPPED", observer.state(name).status)

        self.api.post_server_action(server["id"], {"os-start": None})
        self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("RUNNING", observer.state(name).status)

        pid = observer.state(name).pid
        self.api.post_server_action(server["id"],
                                    {"reboot": {"type": "HARD"}})
        self._wait_for_state_change(server, "ACTIVE")
        self.assertNotEqual(pid, observer.state(name).pid)

        self.api.post_server_action(server["id"], {"pause": None})
        self._wait_for_state_change(server, "PAUSED")
        self.assertEqual("FROZEN", observer.state(name).status)
        self.api.post_server_action(server["id"], {"unpause": None})
        self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("RUNNING", observer.state(name).status)

        self._delete_server(server)
        self.assertRaises(errors.ContainerNotFound, observer.get, name)


    def _console_when(self, server: dict, text: str,
                      timeout: float = 10.0) -> str:
        """The console output through the API, once it shows ``text``
        (the boot script may still be running when nova says ACTIVE)."""
        deadline = time.monotonic() + timeout
        while True:
            output = self.api.post_server_action(
                server["id"], {"os-getConsoleOutput": {}})["output"]
            if text in output or time.monotonic() > deadline:
                return output
            time.sleep(0.2)


class PrivsepDaemonBootTest(base.LXCIntegratedTestBase):
    """The deployed shape: every engine call crosses into a separate
    privsep-helper process; the test process (nova-compute) forks
    nothing."""

    PRIVSEP_DAEMON = True

    def test_boot_power_and_delete_through_the_daemon(self) -> None:
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     networks="none")
        self.assertEqual("ACTIVE", server["status"])
        name = self.container_of(server)
        observer = self.observer_engine()
        state = observer.state(name)
        self.assertEqual("RUNNING", state.status)
        # The container descends from neither nova-compute (this
        # process) nor, once lxc-start daemonised, the privsep daemon.
        self.assertNotIn(os.getpid(), ancestors(state.pid))
        # The privileged work happened in a privsep-helper process that
        # reads this test's configuration file.
        helpers = [cmd for cmd in command_lines()
                   if "privsep-helper" in cmd
                   and str(self.engine_root / "privsep.conf") in cmd]
        self.assertTrue(helpers, "no privsep daemon of this test runs")
        self.assertEqual([server["id"]],
                         self.compute.driver.list_instance_uuids())
        self.api.post_server_action(server["id"], {"os-stop": None})
        self._wait_for_state_change(server, "SHUTOFF")
        self.assertEqual("STOPPED", observer.state(name).status)
        self._delete_server(server)
        self.assertEqual([], observer.list())


def command_lines() -> list[str]:
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    lines.append(f.read().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return lines
