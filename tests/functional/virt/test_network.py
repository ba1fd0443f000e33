"""Neutron ports plugged through os-vif into real containers.

Nova 34 knows Open vSwitch ports only (Linux bridge VIFs were removed
from Nova and os-vif), so the tests run a private Open vSwitch with the
userspace datapath (this kernel has no openvswitch module) and real
bridges and veths; Neutron is nova's fixture, with the ports' bindings
set as ML2/OVS would set them.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import time

import os_vif
from nova.tests.fixtures import neutron as neutron_fixture
from vif_plug_ovs import privsep as ovs_privsep

from nova_lxd.testing import ovs
from tests.functional.virt import base

PORT_1 = neutron_fixture.NeutronFixture.port_1
PORT_2 = neutron_fixture.NeutronFixture.port_2
NETWORK_MTU = neutron_fixture.NeutronFixture.network_1["mtu"]
_SWITCH: ovs.OvsSwitch | None = None


def switch() -> ovs.OvsSwitch:
    """One switch per test process: os-vif caches its ovsdb connection."""
    global _SWITCH
    if _SWITCH is None:
        _SWITCH = ovs.OvsSwitch().start()
        atexit.register(_SWITCH.stop)
    return _SWITCH


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def remove_links(port_id: str) -> None:
    """What a failed test may leave: os-vif reuses existing veths."""
    for prefix in ("tap", "qvo", "qbr"):
        if link_exists(prefix + port_id[:11]):
            subprocess.run(["ip", "link", "del", prefix + port_id[:11]],
                           check=False)


class NetworkTest(base.LXCIntegratedTestBase):
    microversion = "2.37"

    def setUp(self) -> None:
        reason = ovs.missing()
        if reason:
            self.skipTest(reason)
        super().setUp()

    def _setup_compute_service(self):
        self.switch = switch()
        # os-vif's privileged helpers run in this (root) process too.
        self.useFixture(base.fixtures.MockPatchObject(
            ovs_privsep.vif_plug, "client_mode", False))
        os_vif.initialize()
        # ovs-vsctl rather than a native ovsdb connection, whose thread
        # would outlive the switch and each os-vif reset.
        self.flags(ovsdb_connection=self.switch.connection,
                   ovsdb_interface="vsctl", group="os_vif_ovs")
        os_vif.initialize(reset=True)  # picks up the connection
        compute = super()._setup_compute_service()
        # After the base class, which turns the wait off for other tests.
        self.flags(vif_plugging_timeout=60, vif_plugging_is_fatal=True)
        return compute

    def _bind(self, port: dict, **details) -> str:
        """Give the fixture's port an ML2/OVS binding on a netdev bridge
        (so the userspace switch forwards its packets)."""
        self.addCleanup(remove_links, port["id"])
        if port["id"] not in self.neutron._ports:
            # The fixture creates its port_2 on the first create_port.
            created = self.neutron.create_port()["port"]
            self.assertEqual(port["id"], created["id"])
        stored = self.neutron._ports[port["id"]]
        stored["binding:vif_details"] = dict(
            {"port_filter": True, "datapath_type": "netdev"}, **details)
        return port["id"]

    def _boot_on(self, *port_ids: str, wait: bool = True) -> dict:
        server = self._build_server(networks=[{"port": p} for p in port_ids])
        server["imageRef"] = self.upload_busybox()
        created = self.api.post_server({"server": server})
        if wait:
            return self._wait_for_state_change(created, "ACTIVE")
        return created

    def test_hybrid_port_waits_for_vif_plugged(self) -> None:
        port_id = self._bind(PORT_1, ovs_hybrid_plug=True)
        self.neutron._ports[port_id]["status"] = "DOWN"
        server = self._boot_on(port_id, wait=False)
        tap, qbr, qvo = (p + port_id[:11] for p in ("tap", "qbr", "qvo"))

        # The container starts (its veth appears in the per-port bridge)
        # but the server stays BUILD until Neutron says the port is up.
        deadline = time.monotonic() + 60
        while not link_exists(tap) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(link_exists(tap), "the container's veth never "
                                          "appeared")
        time.sleep(1)
        self.assertEqual("BUILD", self.api.get_server(server["id"])["status"])
        self.api.create_server_external_events([{
            "name": "network-vif-plugged", "server_uuid": server["id"],
            "tag": port_id, "status": "completed"}])
        server = self._wait_for_state_change(server, "ACTIVE")

        name = self.container_of(server)
        observer = self.observer_engine()
        self.assertEqual(qbr, os.path.basename(
            os.readlink(f"/sys/class/net/{tap}/master")))
        self.assertIn(qvo, self.switch.ports("br-int"))
        self.assertEqual(port_id,
                         self.switch.interface_of(qvo)["iface-id"])
        cat = ["cat", "/sys/class/net/eth0/address", "/sys/class/net/eth0/mtu"]
        self.assertEqual(f"{PORT_1['mac_address']}\n{NETWORK_MTU}\n",
                         observer.execute(name, cat).stdout.decode())

        self._delete_server(server)
        for device in (tap, qbr, "qvb" + port_id[:11], qvo):
            self.assertFalse(link_exists(device), device)
        self.assertNotIn(qvo, self.switch.ports("br-int"))

    def test_two_containers_talk_through_ovs(self) -> None:
        servers = [self._boot_on(self._bind(port))
                   for port in (PORT_1, PORT_2)]
        observer = self.observer_engine()
        names = [self.container_of(s) for s in servers]
        taps = ["tap" + p["id"][:11] for p in (PORT_1, PORT_2)]
        for tap in taps:
            self.assertIn(tap, self.switch.ports("br-int"))
            # The test's userspace switch (netdev datapath) opens a port
            # when its device appears and sets PROMISC with the flags it
            # read then: if that was before liblxc brought the host end
            # up, it takes it down again (a race of this test switch; the
            # kernel datapath of a real host has none). Up, as liblxc
            # left it.
            subprocess.run(["ip", "link", "set", tap, "up"], check=True)
        self.assertEqual(
            PORT_2["id"], self.switch.interface_of(taps[1])["iface-id"])
        self.assertEqual(
            PORT_2["mac_address"],
            self.switch.interface_of(taps[1])["attached-mac"])
        # No DHCP here: give each container its port's fixed address.
        for name, port in zip(names, (PORT_1, PORT_2), strict=True):
            address = port["fixed_ips"][0]["ip_address"]
            result = observer.execute(
                name, ["ip", "addr", "add", f"{address}/24", "dev", "eth0"])
            self.assertEqual(0, result.exit_code, result.stderr)
        ping = observer.execute(names[0], [
            "ping", "-c", "3", "-W", "5",
            PORT_2["fixed_ips"][0]["ip_address"]])
        self.assertEqual(0, ping.exit_code, ping.stdout + ping.stderr)
        # The ping shows in the port's counters through the API.
        self.api.microversion = "2.48"
        diags = self.api.get_server_diagnostics(servers[0]["id"])
        self.assertEqual(1, diags["num_nics"])
        nic = diags["nic_details"][0]
        self.assertEqual(PORT_1["mac_address"], nic["mac_address"])
        self.assertGreaterEqual(nic["tx_packets"], 3)
        self.assertGreaterEqual(nic["rx_packets"], 3)
        for server in servers:
            self._delete_server(server)
        self.assertEqual([], self.switch.ports("br-int"))
