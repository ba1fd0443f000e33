"""Boots that must fail: the server goes to ERROR with a fault that says
why, and nothing is left on the host."""

from __future__ import annotations

from tests.functional.virt import base


class BadBootTest(base.LXCIntegratedTestBase):

    def _assert_nothing_left(self) -> None:
        observer = self.observer_engine()
        self.assertEqual([], observer.list())
        self.assertEqual([], observer.list_images())
        scratch = observer.config.images_dir / ".tmp"
        self.assertEqual([], sorted(p.name for p in scratch.iterdir()))
        self.assertEqual([], self.compute.driver.list_instance_uuids())

    def test_unconvertible_image(self) -> None:
        image_id = self.upload_image(b"\x7fELF" + b"\0" * 8192)
        server = self._create_server(image_uuid=image_id, networks="none",
                                     expected_state="ERROR")
        fault = self.api.get_server(server["id"])["fault"]["message"]
        self.assertIn("not an image", fault)
        self.assertNotIn("/var/tmp", fault)  # no host paths for users
        self._assert_nothing_left()

    def test_privileged_flavor_needs_the_operator(self) -> None:
        flavor_id = self._create_flavor(
            memory_mb=256, vcpu=1, disk=1, ephemeral=0,
            extra_spec={"lxc:privileged": "true"})
        server = self._create_server(
            image_uuid=self.upload_image(b""), flavor_id=flavor_id,
            networks="none", expected_state="ERROR")
        self.assertIn("lxc:privileged", self._fault_details(server))
        self._assert_nothing_left()

    def test_flavor_over_host_capacity(self) -> None:
        self.flags(cores=-1, group="quota")  # the scheduler must say no
        flavor_id = self._create_flavor(memory_mb=512, vcpu=4096, disk=1,
                                        ephemeral=0)
        server = self._create_server(
            image_uuid=self.upload_image(b""), flavor_id=flavor_id,
            networks="none", expected_state="ERROR")
        fault = self.api.get_server(server["id"])["fault"]
        self.assertIn("No valid host", fault["message"])
        self._assert_nothing_left()

    def _fault_details(self, server: dict) -> str:
        """The fault as an admin sees it (message and details)."""
        fault = self.admin_api.get_server(server["id"])["fault"]
        return f"{fault['message']} {fault.get('details', '')}"
