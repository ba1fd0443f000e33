"""Engine objects in LXD's wire shapes (instances, state, images,
snapshots): the one place that knows both vocabularies."""

from __future__ import annotations

import datetime
import platform
from typing import Any

from nova_lxd.engine import liblxc
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.containers.snapshots import SnapshotRecord
from nova_lxd.engine.containers.state import ContainerState
from nova_lxd.engine.images.store import Image

ZERO_TIME = "0001-01-01T00:00:00Z"
# liblxc state -> LXD (status, status_code)
STATUS = {liblxc.RUNNING: ("Running", 103), liblxc.STOPPED: ("Stopped", 102),
          liblxc.FROZEN: ("Frozen", 110), liblxc.STARTING: ("Starting", 106),
          liblxc.STOPPING: ("Stopping", 107),
          liblxc.FREEZING: ("Freezing", 109),
          liblxc.THAWED: ("Running", 103), liblxc.ABORTING: ("Error", 112)}


def iso(ts: float | None) -> str:
    if not ts:
        return ZERO_TIME
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


def architecture() -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(
        platform.machine(), platform.machine())


def status(lxc_status: str) -> tuple[str, int]:
    return STATUS.get(lxc_status, ("Error", 112))


def instance_url(name: str) -> str:
    return f"/1.0/instances/{name}"


def instance_resources(name: str) -> dict[str, list[str]]:
    """An operation's ``resources`` for one instance (both spellings)."""
    return {"instances": [instance_url(name)],
            "containers": [f"/1.0/containers/{name}"]}


def instance_config(record: ContainerRecord) -> dict[str, str]:
    """The config a client sees: limits (writable) plus read-only facts
    the engine keeps (``volatile.*``, ``user.*`` metadata)."""
    config = {k: str(v) for k, v in record.limits.items()}
    config["volatile.base_image"] = record.image
    if record.privileged:
        config["security.privileged"] = "true"
    if record.nesting:
        config["security.nesting"] = "true"
    if record.stateful:
        config["migration.stateful"] = "true"
    for key, value in record.metadata.items():
        config[f"user.{key}"] = value
    return config


def instance_devices(record: ContainerRecord) -> dict[str, dict[str, str]]:
    devices: dict[str, dict[str, str]] = {
        "root": {"type": "disk", "path": "/", "pool": "default"}}
    if record.root_disk_bytes:
        devices["root"]["size"] = str(record.root_disk_bytes)
    for nic in record.nics:
        keys = {"name": nic.name, "host_name": nic.host_name,
                "parent": nic.link, "hwaddr": nic.hwaddr, "mtu": nic.mtu,
                "limits.ingress": nic.ingress, "limits.egress": nic.egress}
        devices[nic.name] = {"type": "nic", "nictype": "bridged", **{
            k: str(v) for k, v in keys.items() if v is not None}}
    return devices


def writable(record: ContainerRecord) -> dict[str, Any]:
    """The fields a PUT may send back: what the ETag covers."""
    return {"architecture": architecture(),
            "config": instance_config(record),
            "devices": instance_devices(record), "ephemeral": False,
            "profiles": ["default"], "stateful": False,
            "description": ""}


def instance(record: ContainerRecord, lxc_status: str) -> dict[str, Any]:
    text, code = status(lxc_status)
    data = writable(record)
    return {**data, "name": record.name, "status": text,
            "status_code": code, "created_at": iso(record.created_at),
            "last_used_at": iso(record.created_at), "location": "none",
            "type": "container", "project": "default",
            "expanded_config": data["config"],
            "expanded_devices": data["devices"]}


def state(st: ContainerState) -> dict[str, Any]:
    text, code = status(st.status)
    network: dict[str, Any] = {}
    for iface in set(st.addresses) | set(st.network):
        counters = st.network.get(iface, {})
        network[iface] = {
            "addresses": [_address(a) for a in st.addresses.get(iface, [])],
            "counters": {
                "bytes_received": counters.get("rx_bytes", 0),
                "bytes_sent": counters.get("tx_bytes", 0),
                "packets_received": counters.get("rx_packets", 0),
                "packets_sent": counters.get("tx_packets", 0),
                "errors_received": counters.get("rx_errors", 0),
                "errors_sent": counters.get("tx_errors", 0),
                "packets_dropped_inbound": counters.get("rx_drop", 0),
                "packets_dropped_outbound": counters.get("tx_drop", 0)},
            "hwaddr": "", "host_name": "", "mtu": 0, "state": "up",
            "type": "loopback" if iface == "lo" else "broadcast"}
    return {"status": text, "status_code": code, "pid": st.pid or 0,
            "processes": st.processes or 0,
            "cpu": {"usage": st.cpu_time_ns or 0},
            "memory": {"usage": st.memory_bytes or 0,
                       "usage_peak": st.memory_peak_bytes or 0,
                       "swap_usage": 0, "swap_usage_peak": 0},
            "disk": {"root": {"usage": 0}}, "network": network}


def _address(address: str) -> dict[str, str]:
    family = "inet6" if ":" in address else "inet"
    return {"family": family, "address": address,
            "netmask": "64" if family == "inet6" else "24",
            "scope": "global"}


def image(img: Image) -> dict[str, Any]:
    return {"fingerprint": img.fingerprint, "filename": img.filename,
            "size": img.size, "architecture": architecture(),
            "aliases": [{"name": a, "description": ""} for a in img.aliases],
            "properties": {k: str(v) for k, v in img.properties.items()},
            "public": False, "auto_update": False, "cached": False,
            "type": "container", "profiles": ["default"],
            "created_at": iso(img.created_at),
            "uploaded_at": iso(img.created_at),
            "last_used_at": iso(img.last_used_at),
            "expires_at": ZERO_TIME, "update_source": None}


def alias(name: str, fingerprint: str) -> dict[str, str]:
    return {"name": name, "target": fingerprint, "description": "",
            "type": "container"}


def snapshot(instance_name: str, snap: SnapshotRecord,
             record: ContainerRecord) -> dict[str, Any]:
    data = writable(record)
    return {"name": snap.name, "created_at": iso(snap.created_at),
            "last_used_at": ZERO_TIME, "expires_at": ZERO_TIME,
            "stateful": snap.stateful, "size": snap.size_bytes or -1,
            "architecture": data["architecture"], "config": data["config"],
            "devices": data["devices"], "ephemeral": False,
            "profiles": ["default"], "description": "",
            "expanded_config": data["config"],
            "expanded_devices": data["devices"]}
