from types import SimpleNamespace
from unittest import mock

from oslo_serialization import jsonutils

from nova_lxd.virt import host


def fake_engine(tmp_path):
    return SimpleNamespace(
        config=SimpleNamespace(root=tmp_path),
        host=SimpleNamespace(cpu_count=4, memory_bytes=8 * 1024 ** 3))


def test_available_resource(tmp_path):
    with mock.patch.object(host, "architecture", return_value="x86_64"):
        res = host.available_resource(fake_engine(tmp_path), "node1", 1)
    assert (res["vcpus"], res["memory_mb"]) == (4, 8192)
    assert res["hypervisor_hostname"] == "node1"
    assert ("x86_64", "lxc", "exe") in res["supported_instances"]
    assert res["local_gb"] >= res["local_gb_used"] >= 0
    assert jsonutils.loads(res["cpu_info"])["arch"] == "x86_64"


def test_inventory_uses_ratios_and_reserved():
    res = {"vcpus": 4, "memory_mb": 8192, "local_gb": 0}
    inv = host.inventory(
        res, {"VCPU": 16.0, "MEMORY_MB": 1.5, "DISK_GB": 1.0},
        {"VCPU": 0, "MEMORY_MB": 512, "DISK_GB": 0})
    assert set(inv) == {"VCPU", "MEMORY_MB"}  # no disk: not reported
    assert inv["VCPU"]["allocation_ratio"] == 16.0
    assert inv["MEMORY_MB"] == {"total": 8192, "min_unit": 1,
                                "max_unit": 8192, "step_size": 1,
                                "allocation_ratio": 1.5, "reserved": 512}
