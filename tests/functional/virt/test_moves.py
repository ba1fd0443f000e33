"""Resize on the same host and rescue, through nova's API, checked on the
container."""

from __future__ import annotations

from nova.tests.functional.api import client as api_client

from tests.functional.engine.helpers import cgroup_file
from tests.functional.virt import base

MiB = 1024 ** 2


def memory_limit(pid: int) -> int:
    try:
        return int(cgroup_file(pid, "memory", "memory.limit_in_bytes"))
    except FileNotFoundError:
        return int(cgroup_file(pid, "memory", "memory.max"))


class ResizeTest(base.LXCIntegratedTestBase):

    def _setup_compute_service(self):
        compute = super()._setup_compute_service()
        self.flags(allow_resize_to_same_host=True)
        return compute

    def _flavor(self, memory_mb: int, vcpu: int, disk: int) -> str:
        return self._create_flavor(memory_mb=memory_mb, vcpu=vcpu,
                                   disk=disk, ephemeral=0)

    def test_resize_confirm_then_revert_in_place(self) -> None:
        small = self._flavor(256, 1, 1)
        large = self._flavor(512, 2, 2)
        larger = self._flavor(768, 2, 3)
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     flavor_id=small, networks="none")
        name = self.container_of(server)
        observer = self.observer_engine()
        pid = observer.state(name).pid
        self.assertEqual(256 * MiB, memory_limit(pid))

        server = self._resize_server(server, large)
        # Resized while it ran: same init, new cgroup limits.
        self.assertEqual(pid, observer.state(name).pid)
        self.assertEqual(512 * MiB, memory_limit(pid))
        self.assertEqual(2, len(cgroup_file(pid, "cpuset", "cpuset.cpus")
                                .replace("-", ",").split(",")))
        self.assertEqual(2 * 1024 ** 3, observer.get(name).root_disk_bytes)
        server = self._confirm_resize(server)
        self.assertEqual("RUNNING", observer.state(name).status)

        observer.execute(name, ["touch", "/kept"])
        server = self._resize_server(server, larger)
        self.assertEqual(768 * MiB,
                         memory_limit(observer.state(name).pid))
        server = self._revert_resize(server)
        # Back to the old flavor, the same container and files.
        state = observer.state(name)
        self.assertEqual("RUNNING", state.status)
        self.assertEqual(512 * MiB, memory_limit(state.pid))
        self.assertEqual({"limits.cpu": "2", "limits.memory": "512MiB"},
                         observer.get(name).limits)
        self.assertEqual(0, observer.execute(
            name, ["test", "-e", "/kept"]).exit_code)

    def test_root_disk_shrink_is_refused(self) -> None:
        """nova's API already refuses a smaller root disk (the image's
        minimum disk is the boot flavor's); the driver refuses it too
        (unit tested), so the container is never touched."""
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     flavor_id=self._flavor(256, 1, 2),
                                     networks="none")
        name = self.container_of(server)
        observer = self.observer_engine()
        before = observer.get(name)
        error = self.assertRaises(
            api_client.OpenStackApiException, self.api.post_server_action,
            server["id"], {"resize": {"flavorRef": self._flavor(256, 1, 1)}})
        self.assertEqual(400, error.response.status_code)
        self.assertIn("disk is smaller", str(error))
        self.assertEqual(before, observer.get(name))
        self.assertEqual("RUNNING", observer.state(name).status)


class RescueTest(base.LXCIntegratedTestBase):

    def test_rescue_and_unrescue(self) -> None:
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     networks="none")
        name = self.container_of(server)
        observer = self.observer_engine()
        observer.execute(name, ["sh", "-c", "echo before > /etc/own"])

        self.api.post_server_action(server["id"], {"rescue": {}})
        server = self._wait_for_state_change(server, "RESCUE")
        self.assertEqual("RUNNING", observer.state(name).status)
        self.assertIsNotNone(observer.get(name).rescue_image)
        self.assertEqual(b"before\n", observer.execute(
            name, ["cat", "/mnt/rescue/etc/own"]).stdout)
        observer.execute(name, ["sh", "-c",
                                "echo repaired > /mnt/rescue/etc/own"])

        self.api.post_server_action(server["id"], {"unrescue": None})
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertIsNone(observer.get(name).rescue_image)
        self.assertEqual(b"repaired\n", observer.execute(
            name, ["cat", "/etc/own"]).stdout)
        self.assertNotEqual(0, observer.execute(
            name, ["test", "-d", "/mnt/rescue/etc"]).exit_code)
        self._delete_server(server)




class BtrfsResizeTest(ResizeTest):
    """The same, on a btrfs pool: the root disk quota is enforced."""

    STORAGE = "btrfs"

    def test_resize_grows_the_enforced_quota(self) -> None:
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     flavor_id=self._flavor(256, 1, 1),
                                     networks="none")
        name = self.container_of(server)
        observer = self.observer_engine()
        self.assertTrue(observer.get(name).root_disk_enforced)
        self.assertEqual(1024 ** 3, observer.pool.usage(name).quota_bytes)
        self._confirm_resize(self._resize_server(
            server, self._flavor(256, 1, 2)))
        self.assertEqual(2 * 1024 ** 3,
                         observer.pool.usage(name).quota_bytes)


class BtrfsRescueTest(RescueTest):
    STORAGE = "btrfs"
