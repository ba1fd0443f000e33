"""Server actions through nova's API, each checked on the container."""

from __future__ import annotations

import os

from nova_lxd.engine import errors, host
from nova_lxd.privsep import engine as priv_engine
from tests.functional.virt import base


class LifecycleTest(base.LXCIntegratedTestBase):

    def _boot(self, image_id: str | None = None) -> tuple[dict, str]:
        server = self._create_server(
            image_uuid=image_id or self.upload_busybox(), networks="none")
        self.assertEqual("ACTIVE", server["status"])
        return server, self.container_of(server)

    def _action(self, server: dict, action: dict, status: str) -> dict:
        """Post an action and wait until its task is done: the status
        alone may already be the target one (reboot: ACTIVE)."""
        self.api.post_server_action(server["id"], action)
        return self._wait_for_server_parameter(
            server, {"status": status, "OS-EXT-STS:task_state": None})

    def test_soft_reboot_suspend_resume(self) -> None:
        server, name = self._boot()
        observer = self.observer_engine()
        pid = observer.state(name).pid
        observer.execute(name, ["touch", "/kept-across-reboot"])

        self._action(server, {"reboot": {"type": "SOFT"}}, "ACTIVE")
        state = observer.state(name)
        self.assertEqual("RUNNING", state.status)
        self.assertNotEqual(pid, state.pid)
        # A reboot keeps the rootfs; a clean halt wrote the console.
        self.assertEqual(0, observer.execute(
            name, ["test", "-e", "/kept-across-reboot"]).exit_code)

        self._action(server, {"suspend": None}, "SUSPENDED")
        self.assertEqual("FROZEN", observer.state(name).status)
        self._action(server, {"resume": None}, "ACTIVE")
        self.assertEqual("RUNNING", observer.state(name).status)
        self.assertEqual(state.pid, observer.state(name).pid)
        self._delete_server(server)
        self.assertRaises(errors.ContainerNotFound, observer.get, name)

    def test_rebuild_with_another_image(self) -> None:
        first = self.upload_busybox({"etc/image-id": b"first\n"})
        second = self.upload_busybox({"etc/image-id": b"second\n"})
        server, name = self._boot(first)
        observer = self.observer_engine()
        old_image = observer.get(name).image
        self.assertEqual(b"first\n", observer.execute(
            name, ["cat", "/etc/image-id"]).stdout)
        observer.execute(name, ["touch", "/written-before-rebuild"])

        self._action(server, {"rebuild": {"imageRef": second}}, "ACTIVE")
        record = observer.get(name)
        self.assertNotEqual(old_image, record.image)
        self.assertEqual(server["id"], record.metadata["nova.instance_uuid"])
        self.assertEqual("RUNNING", observer.state(name).status)
        self.assertEqual(b"second\n", observer.execute(
            name, ["cat", "/etc/image-id"]).stdout)
        self.assertNotEqual(0, observer.execute(
            name, ["test", "-e", "/written-before-rebuild"]).exit_code)
        self._delete_server(server)

    def test_diagnostics(self) -> None:
        server, name = self._boot()
        flavor = self.api.get_flavor(server["flavor"]["id"])
        self.api.microversion = "2.48"
        diags = self.api.get_server_diagnostics(server["id"])
        self.assertEqual("running", diags["state"])
        self.assertEqual("lxc", diags["hypervisor"])
        self.assertEqual(flavor["ram"], diags["memory_details"]["maximum"])
        # A busybox container uses well under a MiB: compare with the
        # cgroup's own figure, read now.
        used = self.observer_engine().state(name).memory_bytes
        self.assertGreater(used, 0)
        self.assertLessEqual(abs(diags["memory_details"]["used"]
                                 - used // 1024 ** 2), 1)
        self.assertGreater(diags["cpu_details"][0]["time"], 0)
        self.assertEqual(0, diags["num_nics"])
        self.api.microversion = "2.1"
        legacy = self.api.get_server_diagnostics(server["id"])
        self.assertEqual(flavor["ram"] * 1024, legacy["memory-actual"])
        self.assertGreater(legacy["cpu0_time"], 0)

    def test_placement_inventory_matches_the_host(self) -> None:
        providers = self.placement.get(
            f"/resource_providers?name={self.compute.host}").body
        rp_uuid = providers["resource_providers"][0]["uuid"]
        inventory = self._get_provider_inventory(rp_uuid)
        info = host.probe_host(self.engine_root)
        self.assertEqual(info.cpu_count, inventory["VCPU"]["total"])
        self.assertEqual(info.memory_bytes // 1024 ** 2,
                         inventory["MEMORY_MB"]["total"])
        st = os.statvfs(self.engine_root)
        self.assertEqual(st.f_blocks * st.f_frsize // 1024 ** 3,
                         inventory["DISK_GB"]["total"])
        conf = base.CONF
        self.assertEqual(conf.initial_cpu_allocation_ratio,
                         inventory["VCPU"]["allocation_ratio"])
        self.assertEqual(conf.initial_ram_allocation_ratio,
                         inventory["MEMORY_MB"]["allocation_ratio"])
        self.assertEqual(conf.reserved_host_memory_mb,
                         inventory["MEMORY_MB"]["reserved"])
        # Traits follow the driver's capabilities: what works, only.
        traits = set(self.placement.get(
            f"/resource_providers/{rp_uuid}/traits",
            version="1.6").body["traits"])
        for fmt in ("RAW", "QCOW2", "VMDK", "VDI", "VHDX"):
            self.assertIn(f"COMPUTE_IMAGE_TYPE_{fmt}", traits)
        for absent in ("COMPUTE_IMAGE_TYPE_ISO", "COMPUTE_IMAGE_TYPE_AMI",
                       "COMPUTE_NET_ATTACH_INTERFACE",
                       "COMPUTE_VOLUME_MULTI_ATTACH",
                       "COMPUTE_SAME_HOST_COLD_MIGRATE"):
            self.assertNotIn(absent, traits)

    def test_compute_restart_finds_its_containers(self) -> None:
        running, running_name = self._boot()
        stopped, stopped_name = self._boot()
        self._action(stopped, {"os-stop": None}, "SHUTOFF")
        observer = self.observer_engine()
        pid = observer.state(running_name).pid

        # A new service, driver and privileged engine, as after a restart
        # of nova-compute (whose privsep daemon dies with it).
        priv_engine._ENGINES.clear()
        self.compute = self.restart_compute_service(
            self.compute, keep_hypervisor_state=False)

        self.assertEqual(
            sorted([running["id"], stopped["id"]]),
            sorted(self.compute.driver.list_instance_uuids()))
        running = self._wait_for_server_parameter(
            running, {"status": "ACTIVE", "OS-EXT-STS:power_state": 1})
        self.assertEqual(pid, observer.state(running_name).pid)
        stopped = self._wait_for_server_parameter(
            stopped, {"status": "SHUTOFF", "OS-EXT-STS:power_state": 4})
        self.assertEqual("STOPPED", observer.state(stopped_name).status)
        # Still managed: an action after the restart reaches the container.
        self._action(stopped, {"os-start": None}, "ACTIVE")
        self.assertEqual("RUNNING", observer.state(stopped_name).status)

    def test_instance_deleted_while_compute_down_is_reaped_at_start(
            self) -> None:
        kept, kept_name = self._boot()
        gone, gone_name = self._boot()
        observer = self.observer_engine()

        self.compute.stop()
        self.api.microversion = "2.53"
        service = self.api.get_services(binary="nova-compute")[0]
        self.api.put_service(service["id"], {"forced_down": True})
        # With its compute down the API deletes the instance locally; the
        # container is still there.
        self.api.delete_server(gone["id"])
        self._wait_until_deleted(gone)
        self.assertEqual("RUNNING", observer.state(gone_name).status)

        self.api.put_service(service["id"], {"forced_down": False})
        priv_engine._ENGINES.clear()
        self.compute = self.restart_compute_service(
            self.compute, keep_hypervisor_state=False)
        # Reaped by init_host ([DEFAULT] running_deleted_instance_action
        # = reap, nova's default), not half an hour later.
        self.assertRaises(errors.ContainerNotFound, observer.get, gone_name)
        self.assertEqual("RUNNING", observer.state(kept_name).status)
        self.assertEqual([kept["id"]],
                         self.compute.driver.list_instance_uuids())
