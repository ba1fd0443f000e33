"""Moving servers between two nova-lxd hosts through nova's API: cold
migration and resize (confirm and revert), evacuation, and the clean
refusal of live migration of a server whose flavor lacks lxc:stateful.
Checked on each host's engine root."""

from __future__ import annotations

from nova.tests.functional.api import client as api_client

from tests.functional.virt.multihost import Host, TwoHostTestBase
from tests.functional.virt.test_moves import MiB, memory_limit


class HostMovesTest(TwoHostTestBase):

    def _boot(self, flavor_id: str | None = None) -> tuple[dict, str]:
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     flavor_id=flavor_id, host="host1",
                                     networks="none")
        return server, self.container_of(server)

    def _flavor(self, memory_mb: int, vcpu: int, disk: int) -> str:
        return self._create_flavor(memory_mb=memory_mb, vcpu=vcpu,
                                   disk=disk, ephemeral=0)

    @staticmethod
    def _names(host: Host) -> list[str]:
        return [r.name for r in host.observer().list()]

    def _write(self, host: Host, name: str, text: str) -> None:
        result = host.observer().execute(
            name, ["sh", "-c", f"echo {text} > /moved"])
        self.assertEqual(0, result.exit_code)

    def _read(self, host: Host, name: str) -> str:
        return host.observer().execute(name, ["cat", "/moved"]
                                       ).stdout.decode().strip()

    def test_cold_migrate_and_confirm(self) -> None:
        host1, host2 = self.hosts["host1"], self.hosts["host2"]
        server, name = self._boot()
        self._write(host1, name, "from-host1")

        server = self._migrate_server(server, "host2")
        self.assertEqual("host2", server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual("RUNNING", host2.observer().status(name))
        self.assertEqual("from-host1", self._read(host2, name))
        # Kept, stopped, on the source until the move is confirmed.
        self.assertEqual("STOPPED", host1.observer().status(name))

        server = self._confirm_resize(server)
        self.assertEqual([], self._names(host1))
        self.assertEqual([name], self._names(host2))
        host2_rp = self._get_provider_uuid_by_name("host2")
        self.assertEqual({host2_rp}, set(
            self._get_allocations_by_server_uuid(server["id"])))
        # Owners follow the destination's own id range.
        state = host2.observer().state(name)
        self.assertEqual("RUNNING", state.status)

    def test_resize_to_other_host_then_revert(self) -> None:
        host1, host2 = self.hosts["host1"], self.hosts["host2"]
        small, large = self._flavor(256, 1, 1), self._flavor(512, 1, 2)
        server, name = self._boot(small)
        self._write(host1, name, "original")
        created = host1.observer().get(name).created_at

        self.api.post_server_action(
            server["id"], {"resize": {"flavorRef": large}})
        server = self._wait_for_state_change(server, "VERIFY_RESIZE")
        self.assertEqual("host2", server["OS-EXT-SRV-ATTR:host"])
        pid = host2.observer().state(name).pid
        self.assertEqual(512 * MiB, memory_limit(pid))
        self._write(host2, name, "changed-on-host2")

        self.api.post_server_action(server["id"], {"revertResize": None})
        server = self._wait_for_state_change(server, "ACTIVE")
        self._wait_for_migration_status(server, ["reverted"])
        self.assertEqual("host1", server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual([], self._names(host2))
        # The original container, untouched, with the old flavor.
        record = host1.observer().get(name)
        self.assertEqual(created, record.created_at)
        self.assertEqual("256MiB", record.limits["limits.memory"])
        self.assertEqual(256 * MiB,
                         memory_limit(host1.observer().state(name).pid))
        self.assertEqual("original", self._read(host1, name))

    def test_resize_to_other_host_and_confirm(self) -> None:
        host1, host2 = self.hosts["host1"], self.hosts["host2"]
        small, large = self._flavor(256, 1, 1), self._flavor(384, 2, 2)
        server, name = self._boot(small)
        self.api.post_server_action(
            server["id"], {"resize": {"flavorRef": large}})
        server = self._wait_for_state_change(server, "VERIFY_RESIZE")
        server = self._confirm_resize(server)
        self.assertEqual("host2", server["OS-EXT-SRV-ATTR:host"])
        record = host2.observer().get(name)
        self.assertEqual({"limits.cpu": "2", "limits.memory": "384MiB"},
                         record.limits)
        self.assertEqual(2 * 1024 ** 3, record.root_disk_bytes)
        self.assertEqual(384 * MiB,
                         memory_limit(host2.observer().state(name).pid))
        self.assertEqual([], self._names(host1))

    def test_evacuate_rebuilds_on_the_other_host(self) -> None:
        host1, host2 = self.hosts["host1"], self.hosts["host2"]
        server, name = self._boot()
        self._write(host1, name, "lost-with-host1")
        host1.compute.stop()
        api, before = self.admin_api, self.admin_api.microversion
        api.microversion = "2.53"           # services by uuid
        api.put_service_force_down(api.get_services(
            host="host1", binary="nova-compute")[0]["id"], True)
        api.microversion = before
        server = self._evacuate_server(server, expected_host="host2",
                                       expected_state="ACTIVE")
        self.assertEqual("RUNNING", host2.observer().status(name))
        # Storage is not shared between hosts: rebuilt from the image.
        result = host2.observer().execute(name, ["test", "-e", "/moved"])
        self.assertEqual(1, result.exit_code)
        # host1 comes back: its copy of the evacuated server goes.
        self.assertEqual([name], self._names(host1))
        self.restart_compute_service(host1.compute)
        self.assertEqual([], self._names(host1))

    def test_live_migration_refused_with_criu_reason(self) -> None:
        host1, host2 = self.hosts["host1"], self.hosts["host2"]
        server, name = self._boot()
        pid = host1.observer().state(name).pid
        problem = host2.engine.stateful_snapshot_problem()
        # 2.30, a forced host: the destination's pre-check answers the
        # request itself, with its reason.
        error = self.assertRaises(api_client.OpenStackApiException,
                                  self._live_migrate_forced, server, "host2")
        self.assertEqual(400, error.response.status_code)
        self.assertIn("needs CRIU" if problem else "lxc:stateful=true",
                      str(error))
        if problem:
            self.assertIn("criu check", str(error))
        # Through the scheduler: host2 turned down, the move ends in
        # error, the server stays.
        self.api.microversion = "2.74"
        self.api.post_server_action(server["id"], {"os-migrateLive": {
            "host": "host2", "block_migration": "auto"}})
        self._wait_for_migration_status(server, ["error"])
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("host1", server["OS-EXT-SRV-ATTR:host"])
        state = host1.observer().state(name)
        self.assertEqual(("RUNNING", pid), (state.status, state.pid))
        self.assertEqual([], self._names(host2))
