"""Neutron ports as container interfaces, plugged through os-vif.

os-vif wires the host side (an Open vSwitch port, or the per-port Linux
bridge of OVS hybrid plugging); the engine then creates a veth pair whose
host end carries the port's device name (``tapXXXXXXXX-XX``) and whose
container end, ``ethN``, carries the port's MAC address and MTU.

Nova 34 refuses ``binding:vif_type=bridge`` before a driver sees it
(Linux bridge networking was removed from Nova and os-vif), so the
bridges met here are OVS's: ``VIFBridge`` (hybrid plug, the veth joins
``qbrXXX``) and ``VIFOpenVSwitch`` (os-vif creates the OVS port with
Neutron's external ids, as libvirt would; the veth is picked up by name).
"""

from __future__ import annotations

from typing import Any

import os_vif
from nova import exception
from nova.network import model as network_model
from nova.network import os_vif_util
from os_vif.objects import vif as osv_vif
from oslo_log import log as logging

from nova_lxd.engine.nics import Nic

LOG = logging.getLogger(__name__)


def initialize() -> None:
    """Load os-vif's plugins once (nova-compute's own main does this too,
    but not every caller of the driver goes through it)."""
    os_vif.initialize()


def plug_events(network_info: Any) -> list[tuple[str, str]]:
    """The ``network-vif-plugged`` events to wait for: ports that are down
    now (a port already up sends none), as the libvirt driver does."""
    return [("network-vif-plugged", vif["id"])
            for vif in network_info or ()
            if vif.get("active", True) is False
            and vif["vnic_type"] != network_model.VNIC_TYPE_REMOTE_MANAGED]


def to_osvif(vif: Any) -> Any:
    """The os-vif object of a Nova VIF, or a clear refusal."""
    try:
        obj = os_vif_util.nova_to_osvif_vif(vif)
    except exception.NovaException as exc:
        raise exception.VirtualInterfacePlugException(str(exc)) from exc
    if isinstance(obj, osv_vif.VIFOpenVSwitch):
        # libvirt adds the tap to OVS itself; liblxc would not set the
        # external ids Neutron binds by, so os-vif creates the port.
        obj.port_profile.create_port = True
    elif not isinstance(obj, osv_vif.VIFBridge):
        raise exception.VirtualInterfacePlugException(
            f"Port {vif['id']} has VIF type {vif['type']!r} "
            f"({type(obj).__name__ if obj else 'no os-vif object'}); "
            f"containers can use Open vSwitch ports (plain or hybrid) only")
    return obj


def to_nic(index: int, obj: Any) -> Nic:
    """The engine's view of a plugged port."""
    mtu = obj.network.mtu if "mtu" in obj.network and obj.network.mtu \
        else None
    link = obj.bridge_name if isinstance(obj, osv_vif.VIFBridge) \
        else None
    return Nic(name=f"eth{index}", host_name=obj.vif_name, link=link,
               hwaddr=str(obj.address), mtu=mtu)


def plug(instance: Any, network_info: Any) -> list[Nic]:
    """Plug every port's host side; the nics to create the container
    with. A failure unplugs what was plugged."""
    info = os_vif_util.nova_to_osvif_instance(instance)
    plugged: list[Any] = []
    nics = []
    try:
        for index, vif in enumerate(network_info or ()):
            obj = to_osvif(vif)
            os_vif.plug(obj, info)
            plugged.append(obj)
            nics.append(to_nic(index, obj))
    except Exception:
        for obj in plugged:
            _unplug_one(obj, info)
        raise
    return nics


def unplug(instance: Any, network_info: Any) -> None:
    """Unplug every port; failures are logged, never raised (this runs
    while nova deletes or cleans up, which must finish)."""
    info = os_vif_util.nova_to_osvif_instance(instance)
    for vif in network_info or ():
        try:
            obj = to_osvif(vif)
        except exception.VirtualInterfacePlugException:
            continue
        _unplug_one(obj, info)


def _unplug_one(obj: Any, info: Any) -> None:
    try:
        os_vif.unplug(obj, info)
    except Exception as exc:  # os-vif raises its own and ovsdb errors
        LOG.warning("Could not unplug %s: %s", obj.vif_name, exc)
