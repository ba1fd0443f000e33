"""Two nova-lxd computes on one machine (``TwoHostTestBase``): each
server lands in its own host's engine, the hosts' daemons trust each
other, and a cold migration is refused cleanly when the source's daemon
cannot offer the container (the moves themselves are tested on this
base elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.functional.virt.multihost import Host, TwoHostTestBase


def init_uid(host: Host, name: str) -> int:
    """The host uid the container's init runs as."""
    return os.stat(f"/proc/{host.observer().state(name).pid}").st_uid


def other_cert(host: Host) -> tuple[Path, Path]:
    """``host``'s daemon's server certificate and key, which it presents
    as a client to the other host's daemon."""
    return host.daemon.cert_path, host.daemon.key_path


def subordinate_range(host: Host) -> range:
    _user, start, count = host.config.subuid_file.read_text().split(":")
    return range(int(start), int(start) + int(count))


class TwoHostTest(TwoHostTestBase):

    def test_servers_run_on_their_own_host(self) -> None:
        image = self.upload_busybox()
        servers = {name: self._create_server(image_uuid=image, host=name,
                                             networks="none")
                   for name in self.hosts}
        for name, server in servers.items():
            host = self.hosts[name]
            (other,) = (h for h in self.hosts.values() if h is not host)
            container = self.container_of(server)
            self.assertEqual(name, server["OS-EXT-SRV-ATTR:host"])
            self.assertEqual("RUNNING", host.observer().state(container)
                             .status)
            self.assertNotIn(container,
                             [r.name for r in other.observer().list()])
            self.assertFalse((other.config.containers_dir / container)
                             .exists())
            self.assertIn(init_uid(host, container),
                          subordinate_range(host))
            # The host's daemon serves the container it shares a root with.
            status, listed = host.daemon.https_json(
                "GET", "/1.0/instances", cert=other_cert(other))
            self.assertEqual((200, [f"/1.0/instances/{container}"]),
                             (status, listed["metadata"]))
        first, second = (subordinate_range(h) for h in self.hosts.values())
        self.assertTrue(first.stop <= second.start
                        or second.stop <= first.start)

    def test_daemons_trust_each_other(self) -> None:
        for host in self.hosts.values():
            for other in self.hosts.values():
                if other is host:
                    continue
                _status, body = host.daemon.https_json(
                    "GET", "/1.0", cert=other_cert(other))
                info = body["metadata"]
                self.assertEqual("trusted", info["auth"])
                self.assertEqual(
                    host.daemon.fingerprint,
                    info["environment"]["certificate_fingerprint"])
            _status, body = host.daemon.https_json("GET", "/1.0")
            self.assertEqual("untrusted", body["metadata"]["auth"])

    def test_cold_migrate_refused_cleanly_without_source_daemon(self
                                                                ) -> None:
        """A move goes through the source host's nlxd: with it down the
        server stays where it was, running, and the action says why."""
        host1, host2 = self.hosts["host1"], self.hosts["host2"]
        server = self._create_server(image_uuid=self.upload_busybox(),
                                     host="host1", networks="none")
        container = self.container_of(server)
        pid = host1.observer().state(container).pid
        host1.daemon.stop()

        self.api.post_server_action(server["id"],
                                    {"migrate": {"host": "host2"}})
        self._wait_for_migration_status(server, ["error"])
        server = self._wait_for_state_change(server, "ACTIVE")

        self.assertEqual("host1", server["OS-EXT-SRV-ATTR:host"])
        self.assertIsNone(server["OS-EXT-STS:task_state"])
        state = host1.observer().state(container)
        self.assertEqual(("RUNNING", pid), (state.status, state.pid))
        self.assertNotIn(container, [r.name for r in host2.observer().list()])
        # 2.84: instance action events say why they failed ("details").
        self.api.microversion = "2.84"
        event = self._wait_for_instance_action_event(
            server, "migrate", "compute_resize_instance", "Error")
        self.assertIn("this host's nlxd cannot be asked", event["details"])
        # Only host1 holds the server's resources again.
        host1_rp = self._get_provider_uuid_by_name("host1")
        self.assertEqual({host1_rp}, set(
            self._get_allocations_by_server_uuid(server["id"])))
