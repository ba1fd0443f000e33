"""Nova VIFs into os-vif objects and engine nics."""

from __future__ import annotations

import os_vif.objects
import pytest
from nova import exception
from nova.network import model

from nova_lxd.virt import vifs

# What os_vif.initialize() does first (the driver's init_host calls it).
os_vif.objects.register_all()

PORT = "ce531f90-199f-48c0-816c-13e38010b442"


def vif(vif_type="ovs", details=None, active=True):
    network = model.Network(id="net", bridge="br-int", label="private",
                            subnets=[], mtu=1450)
    return model.VIF(id=PORT, address="fa:16:3e:4c:2c:30", network=network,
                     type=vif_type, details=details or {},
                     devname="tap" + PORT[:11], ovs_interfaceid=PORT,
                     vnic_type="normal", active=active)


def test_plain_ovs_port_is_created_by_os_vif():
    obj = vifs.to_osvif(vif())
    assert obj.port_profile.create_port
    nic = vifs.to_nic(0, obj)
    assert (nic.name, nic.host_name, nic.link, nic.hwaddr, nic.mtu) == (
        "eth0", "tapce531f90-19", None, "fa:16:3e:4c:2c:30", 1450)


def test_hybrid_port_joins_its_linux_bridge():
    obj = vifs.to_osvif(vif(details={"ovs_hybrid_plug": True}))
    nic = vifs.to_nic(1, obj)
    assert (nic.name, nic.link) == ("eth1", "qbrce531f90-19")


@pytest.mark.parametrize("vif_type", ["bridge", "hw_veb", "tap"])
def test_other_types_are_refused_with_a_reason(vif_type):
    with pytest.raises(exception.VirtualInterfacePlugException,
                       match="|".join(["Open vSwitch", "no longer",
                                       "supported"])):
        vifs.to_osvif(vif(vif_type))


def test_events_only_for_ports_that_are_down():
    assert vifs.plug_events([vif(active=True), vif(active=False)]) == [
        ("network-vif-plugged", PORT)]
    assert vifs.plug_events(None) == []
