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


@pytest.mark.parametrize("shares, allowance, engine_shares", [
    ("1024", "100%", 1024), ("512", "50%", 512), ("2048", "200%", 2048),
    ("100", "9.76562%", 100), ("2", "0.195312%", 2)])
def test_cpu_shares_as_a_relative_allowance(shares, allowance,
                                            engine_shares):
    spec = flavor.translate(Flavor(extra_specs={
        "quota:cpu_shares": shares}))
    assert spec.limits["limits.cpu.allowance"] == allowance
    assert limits.parse_limits(spec.limits).cpu_shares == engine_shares


def test_cpu_shares_with_an_unlimited_quota_is_fine():
    spec = flavor.translate(Flavor(extra_specs={
        "quota:cpu_shares": "2048", "quota:cpu_quota": "-1"}))
    assert spec.limits["limits.cpu.allowance"] == "200%"


def test_disk_quotas():
    spec = flavor.translate(Flavor(extra_specs={
        "quota:disk_read_bytes_sec": "10485760",
        "quota:disk_read_iops_sec": "100",
        "quota:disk_write_iops_sec": "50",
        "quota:disk_write_bytes_sec": "0"}))
    assert spec.limits["limits.disk.read"] == "10485760,100iops"
    assert spec.limits["limits.disk.write"] == "50iops"
    parsed = limits.parse_limits(spec.limits)
    assert (parsed.disk_read_bps, parsed.disk_read_iops) == (10485760, 100)
    assert (parsed.disk_write_bps, parsed.disk_write_iops) == (None, 50)
    assert "limits.disk.read" not in flavor.translate(Flavor(extra_specs={
        "quota:disk_read_bytes_sec": "0"})).limits


def test_vif_quotas_become_nic_limits():
    spec = flavor.translate(Flavor(extra_specs={
        "quota:vif_inbound_average": "1024",    # KiB/s
        "quota:vif_inbound_burst": "512",       # KiB
        "quota:vif_outbound_average": "128"}))
    assert spec.nic_ingress == 1024 * 1024 * 8
    assert spec.nic_ingress_burst == 512 * 1024
    assert spec.nic_egress == 128 * 1024 * 8
    assert spec.nic_egress_burst is None
    plain = flavor.translate(Flavor())
    assert (plain.nic_ingress, plain.nic_egress) == (None, None)
    # What the driver will make of them is a valid engine nic.
    from nova_lxd.engine.nics import Nic
    Nic("eth0", "tap0", ingress=spec.nic_ingress, egress=spec.nic_egress,
        ingress_burst=spec.nic_ingress_burst).validate()


@pytest.mark.parametrize("specs, words", [
    ({"quota:cpu_shares": "512", "quota:cpu_quota": "20000"},
     "quota:cpu_shares and quota:cpu_quota"),
    ({"quota:cpu_shares": "1"}, "between 2 and 262144"),
    ({"quota:cpu_shares": "many"}, "whole number"),
    ({"quota:cpu_shares": "512", "lxc:cpu_allowance": "50%"},
     "lxc:cpu_allowance contradicts"),
    ({"quota:disk_total_bytes_sec": "1000"}, "separately"),
    ({"quota:disk_total_iops_sec": "10"}, "quota:disk_total_iops_sec"),
    ({"quota:disk_read_bytes_sec": "-5"}, "whole number"),
    ({"quota:vif_inbound_average": "100", "quota:vif_inbound_peak": "200"},
     "no peak rate"),
    ({"quota:vif_outbound_peak": "200"}, "quota:vif_outbound_peak"),
    ({"quota:vif_outbound_burst": "64"}, "needs quota:vif_outbound_average"),
    ({"quota:vif_inbound_average": "1.5"}, "whole number"),
])
def test_refused_quotas_say_why(specs, words):
    with pytest.raises(flavor.UnsupportedFlavor) as exc:
        flavor.translate(Flavor(extra_specs=specs))
    assert words in str(exc.value)


@pytest.mark.parametrize("value, stateful", [
    (None, False), ("true", True), ("True", True), ("false", False)])
def test_stateful_switch(value, stateful):
    specs = {} if value is None else {"lxc:stateful": value}
    assert flavor.translate(Flavor(extra_specs=specs)).stateful is stateful


def test_stateful_malformed():
    with pytest.raises(flavor.UnsupportedFlavor) as exc:
        flavor.translate(Flavor(extra_specs={"lxc:stateful": "live"}))
    assert "lxc:stateful" in str(exc.value)
