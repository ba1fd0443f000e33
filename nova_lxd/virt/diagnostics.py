"""A container's counters as Nova diagnostics.

The engine reads them from the container's cgroups (cpu time, memory,
block io) and from its own network namespace (per-interface counters);
this module only renames them into Nova's two diagnostics shapes.
"""

from __future__ import annotations

from typing import Any

from nova.compute import power_state
from nova.objects import diagnostics as diagnostics_obj
from oslo_utils import timeutils

from nova_lxd.engine.containers.state import ContainerState
from nova_lxd.engine.nics import Nic

MiB = 1024 ** 2
# Nova's diagnostics model knows five driver names (libvirt, xenapi,
# vmwareapi, ironic, hyperv) and no other: containers report the one whose
# hypervisor type 'lxc' they share. ``hypervisor`` says what runs them.
DRIVER_FIELD = "libvirt"
HYPERVISOR = "lxc"


def legacy(state: ContainerState, nics: tuple[Nic, ...],
           memory_limit: int | None) -> dict[str, Any]:
    """``get_diagnostics``: the free-form dict of API < 2.48."""
    out: dict[str, Any] = {}
    if state.cpu_time_ns is not None:
        out["cpu0_time"] = state.cpu_time_ns
    if state.memory_bytes is not None:
        out["memory"] = state.memory_bytes // 1024  # KiB, like libvirt
    if memory_limit:
        out["memory-actual"] = memory_limit // 1024
    if state.disk_read_bytes is not None:
        out["rootfs_read"] = state.disk_read_bytes
        out["rootfs_write"] = state.disk_write_bytes or 0
    for nic in nics:
        counters = state.network.get(nic.name, {})
        for key in ("rx_bytes", "rx_packets", "rx_errors", "rx_drop",
                    "tx_bytes", "tx_packets", "tx_errors", "tx_drop"):
            if key in counters:
                prefix = nic.host_name
                out[f"{prefix}_{key.replace('_bytes', '')}"] = counters[key]
    return out


def instance(instance: Any, state: ContainerState, info_state: int,
             nics: tuple[Nic, ...], memory_limit: int | None,
             config_drive: bool) -> Any:
    """``get_instance_diagnostics``: Nova's Diagnostics object."""
    uptime = None
    if instance.launched_at:
        uptime = int(timeutils.delta_seconds(
            timeutils.normalize_time(instance.launched_at),
            timeutils.utcnow()))
    diags = diagnostics_obj.Diagnostics(
        state=power_state.STATE_MAP[info_state], driver=DRIVER_FIELD,
        hypervisor=HYPERVISOR, hypervisor_os="linux", uptime=uptime,
        config_drive=config_drive)
    diags.memory_details = diagnostics_obj.MemoryDiagnostics(
        maximum=(memory_limit // MiB) if memory_limit else None,
        used=(state.memory_bytes // MiB)
        if state.memory_bytes is not None else None)
    # One cpu line: the cgroup counts the time of all of the container's
    # cpus together.
    diags.add_cpu(id=0, time=state.cpu_time_ns)
    diags.add_disk(read_bytes=state.disk_read_bytes,
                   write_bytes=state.disk_write_bytes)
    for nic in nics:
        counters = state.network.get(nic.name, {})
        diags.add_nic(mac_address=nic.hwaddr,
                      rx_octets=counters.get("rx_bytes"),
                      rx_packets=counters.get("rx_packets"),
                      rx_errors=counters.get("rx_errors"),
                      rx_drop=counters.get("rx_drop"),
                      tx_octets=counters.get("tx_bytes"),
                      tx_packets=counters.get("tx_packets"),
                      tx_errors=counters.get("tx_errors"),
                      tx_drop=counters.get("tx_drop"))
    return diags
