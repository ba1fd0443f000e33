"""Snapshot a running server to Glance and boot the snapshot, through
nova's API."""

from __future__ import annotations

from tests.functional.virt import base


class SnapshotTest(base.LXCIntegratedTestBase):

    def test_snapshot_running_server_and_boot_it(self) -> None:
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     networks="none")
        name = self.container_of(server)
        observer = self.observer_engine()
        observer.execute(name, ["sh", "-c", "echo precious > /root/data"])
        pid = observer.state(name).pid

        self.api.microversion = "2.45"  # createImage answers with the id
        image_id = self.api.post_server_action(
            server["id"], {"createImage": {"name": "snap"}})["image_id"]
        self._wait_for_server_parameter(
            server, {"status": "ACTIVE", "OS-EXT-STS:task_state": None})
        image = self.glance.show(None, image_id)
        self.assertEqual("active", image["status"])
        self.assertEqual("raw", image["disk_format"])
        self.assertEqual("bare", image["container_format"])
        self.assertEqual("lxc", image["properties"]["hypervisor_type"])
        # The instance kept running: same init, nothing restarted.
        self.assertEqual(pid, observer.state(name).pid)
        self.assertEqual("ACTIVE", self.api.get_server(
            server["id"])["status"])
        # No engine snapshot or exported image is left behind.
        self.assertEqual([], observer.snapshot_list(name))
        self.assertEqual(1, len(observer.list_images()))

        copy = self._create_server(image_uuid=image_id,
                                   networks="none")
        self.assertEqual(b"precious\n", observer.execute(
            self.container_of(copy), ["cat", "/root/data"]).stdout)


class BtrfsSnapshotTest(SnapshotTest):
    """On btrfs the snapshot is a read-only subvolume, taken in
    milliseconds."""

    STORAGE = "btrfs"
