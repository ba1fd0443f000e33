"""Live migration between two nova-lxd hosts through nova's API: a server
whose flavor has ``lxc:stateful=true`` moves with its processes (CRIU);
one without it is refused cleanly and stays where it was, running.

Both hosts get the machine's whole subordinate id range (not halves, as
``TwoHostTestBase`` gives for cold moves): CRIU restores the dumped user
namespace, so the destination must be able to allocate the source's
host ids."""

from __future__ import annotations

import time
from pathlib import Path

from nova.tests.functional.api import client as api_client

from nova_lxd.client.unix import UNIX_BASE
from nova_lxd.engine import idmap
from tests.functional.virt.multihost import HOSTS, Host, TwoHostTestBase

MOVE_TIMEOUT = 180.0


class LiveMigrationTest(TwoHostTestBase):

    def _host_id_ranges(self, source: Path) -> list[str]:
        ranges = idmap.read_subordinate_ranges(source, "root")
        if not ranges:
            raise RuntimeError(f"{source} has no ids for root")
        whole = f"root:{ranges[0].start}:{ranges[0].count}\n"
        return [whole] * len(HOSTS)

    def _boot(self, stateful: bool) -> tuple[dict, str]:
        flavor = self._create_flavor(
            memory_mb=256, vcpu=1, disk=1, ephemeral=0,
            extra_spec={"lxc:stateful": "true"} if stateful else None)
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     flavor_id=flavor, host="host1",
                                     networks="none")
        return server, self.container_of(server)

    @staticmethod
    def _sh(host: Host, name: str, script: str) -> str:
        result = host.observer().execute(name, ["sh", "-c", script])
        assert result.exit_code == 0, result
        return result.stdout.decode().strip()

    def _start_sleep(self, host: Host, name: str) -> str:
        # Its own session: a session led from outside the container (the
        # attached shell) cannot be dumped.
        self._sh(host, name, "setsid sleep 1000 </dev/null >/dev/null "
                             "2>&1 &")
        pid = self._sh(host, name, "pidof sleep || true")
        self.assertTrue(pid)
        return pid

    @staticmethod
    def _names(host: Host) -> list[str]:
        return [r.name for r in host.observer().list()]

    def _wait_for_live_migration(self, server: dict) -> dict:
        deadline = time.monotonic() + MOVE_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            for migration in self.admin_api.api_get(
                    "/os-migrations").body["migrations"]:
                if migration["instance_uuid"] == server["id"]:
                    status = migration["status"]
                    if status in ("completed", "error", "failed",
                                  "cancelled"):
                        return migration
            time.sleep(0.5)
        self.fail(f"live migration still {status} after {MOVE_TIMEOUT} s")

    def test_stateful_server_moves_live_with_its_processes(self) -> None:
        host1, host2 = self.hosts["host1"], self.hosts["host2"]
        problem = host1.engine.stateful_snapshot_problem()
        if problem:
            self.skipTest(f"CRIU does not work here: {problem}")
        server, name = self._boot(stateful=True)
        self.assertTrue(host1.observer().get(name).stateful)
        pid = self._start_sleep(host1, name)
        self._sh(host1, name, "echo from-host1 > /moved")

        self._live_migrate_forced(server, "host2")
        migration = self._wait_for_live_migration(server)
        self.assertEqual("completed", migration["status"])
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("host2", server["OS-EXT-SRV-ATTR:host"])

        # Running on host2, the same process (same pid inside), the files.
        self.assertEqual("RUNNING", host2.observer().status(name))
        self.assertEqual(pid, self._sh(host2, name, "pidof sleep || true"))
        self.assertEqual("from-host1", self._sh(host2, name, "cat /moved"))
        self.assertTrue(host2.observer().get(name).stateful)
        # Nothing left on host1; allocations only on host2.
        self.assertEqual([], self._names(host1))
        self.assertEqual({self._get_provider_uuid_by_name("host2")}, set(
            self._get_allocations_by_server_uuid(server["id"])))

    def _receiving(self, host: Host) -> list[dict]:
        """The host daemon's receives still waiting for an instance and
        not withdrawn (a withdrawn one nobody dialed stays
        ``Cancelling`` until the daemon's connect timeout)."""
        with host.daemon.unix_session() as session:
            groups = session.get(f"{UNIX_BASE}/1.0/operations?recursion=1",
                                 timeout=30).json()["metadata"]
        return [op for op in groups.get("running", [])
                if op["description"].startswith("Receiving")
                and op["status"] == "Running"]

    def test_failed_live_move_rolls_back(self) -> None:
        """host2 no longer trusts host1's daemon: the push fails (today
        already the daemon's refusal of ``live``); the server runs on on
        host1, host2 withdrew its receive and keeps nothing."""
        host1, host2 = self.hosts["host1"], self.hosts["host2"]
        problem = host1.engine.stateful_snapshot_problem()
        if problem:
            self.skipTest(f"CRIU does not work here: {problem}")
        server, name = self._boot(stateful=True)
        pid = self._start_sleep(host1, name)
        with host2.daemon.unix_session() as session:
            response = session.delete(
                f"{UNIX_BASE}/1.0/certificates/{host1.daemon.fingerprint}",
                timeout=30)
        self.assertLess(response.status_code, 300, response.text)

        self._live_migrate_forced(server, "host2")
        migration = self._wait_for_live_migration(server)
        self.assertIn(migration["status"], ("error", "failed"))
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("host1", server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual("RUNNING", host1.observer().status(name))
        self.assertEqual(pid, self._sh(host1, name, "pidof sleep || true"))
        deadline = time.monotonic() + 30
        while self._receiving(host2) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual([], self._receiving(host2))
        self.assertEqual([], self._names(host2))
        self.assertEqual({self._get_provider_uuid_by_name("host1")}, set(
            self._get_allocations_by_server_uuid(server["id"])))

    def test_server_without_stateful_flavor_refused(self) -> None:
        host1, host2 = self.hosts["host1"], self.hosts["host2"]
        server, name = self._boot(stateful=False)
        pid = host1.observer().state(name).pid
        error = self.assertRaises(api_client.OpenStackApiException,
                                  self._live_migrate_forced, server, "host2")
        self.assertEqual(400, error.response.status_code)
        problem = host2.engine.stateful_snapshot_problem()
        self.assertIn("needs CRIU" if problem else "lxc:stateful=true",
                      str(error))
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("host1", server["OS-EXT-SRV-ATTR:host"])
        state = host1.observer().state(name)
        self.assertEqual(("RUNNING", pid), (state.status, state.pid))
        self.assertEqual([], self._names(host2))
