import dataclasses

import pytest

from nova_lxd.engine import limits
from nova_lxd.virt import flavor


@dataclasses.dataclass
class Flavor:
    name: str = "m1.small"
    vcpus: int = 2
    memory_mb: int = 512
    root_gb: int = 1
    extra_specs: dict = dataclasses.field(default_factory=dict)


def test_basic_flavor():
    spec = flavor.translate(Flavor())
    assert spec.limits == {"limits.cpu": "2", "limits.memory": "512MiB"}
    assert spec.root_disk_bytes == 1024 ** 3
    assert (spec.privileged, spec.nesting, spec.isolated_idmap) == (
        False, False, True)
    parsed = limits.parse_limits(spec.limits)  # the engine accepts it
    assert parsed.memory_bytes == 512 * 1024 * 1024
    assert parsed.cpu_count == 2


def test_zero_root_disk_means_none():
    assert flavor.translate(Flavor(root_gb=0)).root_disk_bytes is None


def test_cpu_quota_as_libvirt():
    spec = flavor.translate(Flavor(extra_specs={
        "quota:cpu_quota": "25000", "quota:cpu_period": "100000"}))
    assert spec.limits["limits.cpu.allowance"] == "25000us/100000us"
    limits.parse_limits(spec.limits)
    assert "limits.cpu.allowance" not in flavor.translate(Flavor(
        extra_specs={"quota:cpu_quota": "-1"})).limits


def test_lxc_extra_specs():
    spec = flavor.translate(Flavor(extra_specs={
        "lxc:cpu_priority": "5", "lxc:processes": "200",
        "lxc:memory_swap": "false", "lxc:cpu_allowance": "50%"}))
    assert spec.limits["limits.cpu.priority"] == "5"
    assert spec.limits["limits.processes"] == "200"
    assert spec.limits["limits.memory.swap"] == "false"
    assert spec.limits["limits.cpu.allowance"] == "50%"
    limits.parse_limits(spec.limits)


@pytest.mark.parametrize("specs", [
    {"quota:cpu_quota": "lots"},
    {"quota:cpu_quota": "1000", "lxc:cpu_allowance": "50%"},
    {"lxc:privileged": "maybe"},
])
def test_malformed_specs(specs):
    with pytest.raises(flavor.UnsupportedFlavor) as exc:
        flavor.translate(Flavor(extra_specs=specs))
    assert "m1.small" in str(exc.value)


@pytest.mark.parametrize("key,value,allow", [
    ("lxc:privileged", "true", "allow_privileged"),
    ("lxc:nesting", "True", "allow_nesting"),
    ("lxc:isolated_idmap", "false", "allow_shared_idmap"),
])
def test_switches_need_the_operator(key, value, allow):
    with pytest.raises(flavor.UnsupportedFlavor) as exc:
        flavor.translate(Flavor(extra_specs={key: value}))
    assert key in str(exc.value)
    spec = flavor.translate(Flavor(extra_specs={key: value}),
                            flavor.Policy(**{allow: True}))
    assert (spec.privileged or spec.nesting or not spec.isolated_idmap)
