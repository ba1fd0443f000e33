"""What this host offers Nova: cpus, memory and disk, as Nova wants them.

Read from the engine's host probe (cpus, memory) and the file system of
the engine's root (disk), so the figures describe what containers can
really use. Kept apart from the driver so the driver stays a thin
translation layer.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from oslo_serialization import jsonutils

GiB = 1024 ** 3
MiB = 1024 ** 2
# (architecture, hypervisor type, vm mode) for ImagePropertiesFilter: an
# image that asks for hypervisor_type=lxc / vm_mode=exe must still land here.
HV_TYPE = "lxc"
VM_MODE = "exe"


def architecture() -> str:
    """The host's machine name (x86_64, aarch64). ``platform`` caches the
    answer, which nova's tests rely on (they poison ``os.uname``)."""
    return platform.machine()


def disk_gb(engine: Any) -> tuple[int, int]:
    """(total, used) GiB of the file system holding the engine's root,
    where images and container root file systems live."""
    st = os.statvfs(engine.config.root)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    return total // GiB, (total - free) // GiB


def available_resource(engine: Any, nodename: str,
                       hypervisor_version: int) -> dict[str, Any]:
    """The dict ``ComputeDriver.get_available_resource`` returns."""
    info = engine.host
    total_gb, used_gb = disk_gb(engine)
    arch = architecture()
    return {
        "vcpus": info.cpu_count,
        "memory_mb": info.memory_bytes // MiB,
        "local_gb": total_gb,
        "vcpus_used": 0,
        "memory_mb_used": 0,
        "local_gb_used": used_gb,
        "hypervisor_type": HV_TYPE,
        "hypervisor_version": hypervisor_version,
        "hypervisor_hostname": nodename,
        "cpu_info": jsonutils.dumps({"arch": arch,
                                     "topology": {"cores": info.cpu_count,
                                                  "sockets": 1,
                                                  "threads": 1}}),
        "supported_instances": [(arch, HV_TYPE, VM_MODE)],
        "numa_topology": None,
        "disk_available_least": total_gb - used_gb,
    }


def inventory(resources: dict[str, Any], ratios: dict[str, float],
              reserved: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Placement inventory of VCPU, MEMORY_MB and DISK_GB from
    :func:`available_resource`, with Nova's ratios and reservations."""
    totals = {"VCPU": resources["vcpus"],
              "MEMORY_MB": resources["memory_mb"],
              "DISK_GB": resources["local_gb"]}
    return {rc: {"total": total, "min_unit": 1, "max_unit": total,
                 "step_size": 1, "allocation_ratio": ratios[rc],
                 "reserved": reserved[rc]}
            for rc, total in totals.items() if total > 0}
