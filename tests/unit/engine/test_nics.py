import pytest

from nova_lxd.engine import errors, names, nics
from nova_lxd.engine.nics import Nic


def test_render_veth_with_everything():
    pairs = nics.render([Nic("eth0", "tapabc", "br0", "FA:16:3E:00:00:01",
                             1450),
                         Nic("eth1", "tapdef")])
    assert pairs == [
        ("lxc.net.0.type", "veth"), ("lxc.net.0.name", "eth0"),
        ("lxc.net.0.veth.pair", "tapabc"), ("lxc.net.0.flags", "up"),
        ("lxc.net.0.link", "br0"), ("lxc.net.0.hwaddr", "fa:16:3e:00:00:01"),
        ("lxc.net.0.mtu", "1450"),
        ("lxc.net.1.type", "veth"), ("lxc.net.1.name", "eth1"),
        ("lxc.net.1.veth.pair", "tapdef"), ("lxc.net.1.flags", "up")]


def test_no_nics_is_an_empty_namespace():
    assert nics.render([]) == [("lxc.net.0.type", "empty")]


@pytest.mark.parametrize("nic", [
    Nic("eth0", "tap0", link="br 0"),
    Nic("eth0", "tap0", hwaddr="fa:16:3e:00:00"),
    Nic("eth0", "tap0", mtu=70000),
    Nic("eth0", "tap0", mtu="1500"),
    Nic("", "tap0"),
])
def test_invalid(nic):
    with pytest.raises(errors.InvalidNic):
        nic.validate()


def test_duplicates_refused():
    with pytest.raises(errors.InvalidNic, match="duplicate host_name"):
        nics.validate_all([Nic("eth0", "tap0"), Nic("eth1", "tap0")])
    with pytest.raises(errors.InvalidNic, match="duplicate name"):
        nics.validate_all([{"name": "eth0", "host_name": "a"},
                           {"name": "eth0", "host_name": "b"}])


@pytest.mark.parametrize("hostname", ["a", "web-1", "web-1.example.org",
                                      "1st.example"])
def test_hostnames(hostname):
    assert names.validate_hostname(hostname) == hostname


@pytest.mark.parametrize("hostname", ["", "-a", "a-", "a..b", "a_b",
                                      "x" * 64, "a\nb", None])
def test_bad_hostnames(hostname):
    with pytest.raises(errors.InvalidConfig):
        names.validate_hostname(hostname)


def test_rate_limits_validate():
    nic = Nic("eth0", "tap0", ingress=10**6, egress=8000,
              ingress_burst=4096).validate()
    assert nic.limited
    assert not Nic("eth0", "tap0").limited
    # Not liblxc keys: tc applies them at start.
    assert nics.render([nic]) == nics.render([Nic("eth0", "tap0")])


@pytest.mark.parametrize("fields, words", [
    ({"ingress": 0}, "ingress 0"), ({"egress": 7999}, "egress"),
    ({"ingress": "1mbit"}, "whole number"), ({"egress": True}, "egress"),
    ({"ingress": 10**13}, "ingress"),
    ({"ingress": 10**6, "ingress_burst": 0}, "ingress_burst"),
    ({"egress_burst": 1000}, "needs egress")])
def test_bad_rate_limits(fields, words):
    with pytest.raises(errors.InvalidNic, match=words):
        Nic("eth0", "tap0", **fields).validate()


def test_old_records_without_limits_load():
    from nova_lxd.engine.containers.records import ContainerRecord
    record = ContainerRecord.from_dict({
        "name": "c", "image": "f", "nics": [{"name": "eth0",
                                             "host_name": "tap0"}]})
    assert record.nics[0].ingress is None
    again = ContainerRecord.from_dict(
        record.replace(nics=(Nic("eth0", "t", egress=9000),)).to_dict())
    assert again.nics[0].egress == 9000
