import subprocess

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.containers import traffic
from nova_lxd.engine.nics import Nic


def test_unlimited_nic_needs_no_command():
    assert traffic.commands(Nic("eth0", "tap0")) == []


def test_ingress_is_a_token_bucket_on_the_host_end():
    nic = Nic("eth0", "tap0", ingress=10_000_000, ingress_burst=32768)
    assert traffic.commands(nic) == [
        (["tc", "qdisc", "del", "dev", "tap0", "root"], False),
        (["tc", "qdisc", "del", "dev", "tap0", "ingress"], False),
        (["tc", "qdisc", "replace", "dev", "tap0", "root", "tbf", "rate",
          "10000000bit", "burst", "32768", "latency", "50ms"], True)]


def test_egress_is_policed_on_the_host_end():
    nic = Nic("eth0", "tap0", egress=8_000_000)
    assert traffic.commands(nic, tc="/sbin/tc")[2:] == [
        (["/sbin/tc", "qdisc", "add", "dev", "tap0", "handle", "ffff:",
          "ingress"], True),
        (["/sbin/tc", "filter", "add", "dev", "tap0", "parent", "ffff:",
          "protocol", "all", "prio", "1", "u32", "match", "u32", "0", "0",
          "police", "rate", "8000000bit", "burst", "65536", "mtu", "64kb",
          "drop"], True)]


@pytest.mark.parametrize("rate, burst", [
    (8000, 65536), (10_000_000, 65536), (1_000_000_000, 6_250_000)])
def test_default_burst(rate, burst):
    assert traffic.default_burst(rate) == burst


def _fake_run(monkeypatch, fail_on=None):
    calls = []

    def run(argv):
        calls.append(argv)
        failed = fail_on is not None and fail_on in argv
        return subprocess.CompletedProcess(
            argv, 2 if failed or "del" in argv else 0, "",
            "Error: nope" if failed or "del" in argv else "")
    monkeypatch.setattr(traffic, "_run", run)
    return calls


def test_apply_ignores_failed_deletes(monkeypatch):
    calls = _fake_run(monkeypatch)
    traffic.apply("c1", [Nic("eth0", "tap0", ingress=10**6, egress=10**6),
                         Nic("eth1", "tap1")])
    assert len(calls) == 5
    assert all("tap0" in argv for argv in calls)


def test_apply_failure_is_typed_and_names_the_command(monkeypatch):
    _fake_run(monkeypatch, fail_on="filter")
    with pytest.raises(errors.TrafficLimitFailed) as exc:
        traffic.apply("c1", [Nic("eth0", "tap0", egress=10**6)])
    assert isinstance(exc.value, errors.StartFailed)
    assert "tap0" in str(exc.value) and "police" in str(exc.value)
    assert "Error: nope" in str(exc.value)


def test_check_supported_refuses_egress_without_police(monkeypatch):
    monkeypatch.setattr(traffic, "egress_problem",
                        lambda tc: "no CONFIG_NET_ACT_POLICE")
    monkeypatch.setattr(traffic.shutil, "which", lambda tc: "/sbin/tc")
    traffic.check_supported([Nic("eth0", "tap0", ingress=10**6)])
    with pytest.raises(errors.InvalidNic, match="CONFIG_NET_ACT_POLICE"):
        traffic.check_supported([Nic("eth0", "tap0", egress=10**6)])
    monkeypatch.setattr(traffic.shutil, "which", lambda tc: None)
    traffic.check_supported([Nic("eth0", "tap0")])
    with pytest.raises(errors.InvalidNic, match="iproute2"):
        traffic.check_supported([Nic("eth0", "tap0", ingress=10**6)])


def test_hook_script_for_reboots_from_inside():
    assert traffic.hook_script([Nic("eth0", "tap0")]) is None
    script = traffic.hook_script(
        [Nic("eth0", "tap0", ingress=10**6), Nic("eth1", "tap1")],
        tc="/usr/sbin/tc")
    assert script.splitlines() == [
        "#!/bin/sh",
        "# Network limits (nova_lxd.engine.containers.traffic)",
        "set -e",
        "/usr/sbin/tc qdisc del dev tap0 root 2>/dev/null || true",
        "/usr/sbin/tc qdisc del dev tap0 ingress 2>/dev/null || true",
        "/usr/sbin/tc qdisc replace dev tap0 root tbf rate 1000000bit "
        "burst 65536 latency 50ms"]
