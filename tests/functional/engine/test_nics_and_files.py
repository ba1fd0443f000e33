"""Network interfaces, host names, metadata and seed files of real
containers."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.containers.files import RootfsFile


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def bridge():
    name = "nlxt" + uuid.uuid4().hex[:8]
    ip("link", "add", name, "type", "bridge")
    yield name
    subprocess.run(["ip", "link", "del", name], capture_output=True)


def run(engine, name: str, *command: str) -> str:
    result = engine.execute(name, list(command))
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode().strip()


def test_veth_on_a_bridge_with_mac_and_mtu(engine, image, bridge):
    tap = "tap" + uuid.uuid4().hex[:8]
    nic = {"name": "eth0", "host_name": tap, "link": bridge,
           "hwaddr": "fa:16:3e:12:34:56", "mtu": 1400}
    engine.launch("netc", "busybox", nics=[nic])
    assert f"master {bridge}" in ip("link", "show", tap)
    assert run(engine, "netc", "cat", "/sys/class/net/eth0/address") \
        == "fa:16:3e:12:34:56"
    assert run(engine, "netc", "cat", "/sys/class/net/eth0/mtu") == "1400"
    assert engine.get("netc").nics[0].host_name == tap
    engine.delete("netc", force=True)
    # liblxc removes the host end with the network namespace.
    gone = subprocess.run(["ip", "link", "show", tap], capture_output=True)
    assert gone.returncode != 0


def test_no_nics_is_loopback_only(engine, image):
    engine.launch("lonely", "busybox")
    assert run(engine, "lonely", "ls", "/sys/class/net") == "lo"


@pytest.mark.parametrize("nic, words", [
    ({"name": "eth0\nlxc.x", "host_name": "t0"}, "name must be"),
    ({"name": "eth0", "host_name": "a" * 16}, "host_name must be"),
    ({"name": "eth0", "host_name": "t0", "hwaddr": "01:00:5e:00:00:01"},
     "unicast"),
    ({"name": "eth0", "host_name": "t0", "mtu": 20}, "MTU"),
    ({"name": "eth0", "host_name": "t0", "colour": "red"}, "unknown"),
])
def test_bad_nics_are_refused_before_anything_exists(engine, image, nic,
                                                     words):
    with pytest.raises(errors.InvalidNic, match=words):
        engine.create("badnic", "busybox", nics=[nic])
    assert engine.list() == []


def test_hostname_and_metadata(engine, image):
    engine.launch("named", "busybox", hostname="web-1.example.org",
                  metadata={"nova.uuid": "abc"})
    assert run(engine, "named", "hostname") == "web-1.example.org"
    assert run(engine, "named", "cat", "/etc/hostname") == \
        "web-1.example.org"
    assert engine.get("named").metadata == {"nova.uuid": "abc"}
    with pytest.raises(errors.InvalidConfig):
        engine.create("other", "busybox", hostname="-bad-")
    with pytest.raises(errors.InvalidConfig):
        engine.create("other", "busybox", metadata={"a b": "c"})
    assert [r.name for r in engine.list()] == ["named"]


def test_seed_files_owned_by_container_ids(engine, image):
    seed = RootfsFile("/var/lib/cloud/seed/x/meta-data", b"id: 1\n",
                      mode=0o600)
    engine.launch("seeded", "busybox", files=[seed])
    assert run(engine, "seeded", "cat", "/var/lib/cloud/seed/x/meta-data") \
        == "id: 1"
    # As the container sees them: root's, with the mode asked for.
    assert run(engine, "seeded", "stat", "-c", "%u:%g %a",
               "/var/lib/cloud/seed/x/meta-data") == "0:0 600"
    assert run(engine, "seeded", "stat", "-c", "%u:%g",
               "/var/lib/cloud/seed") == "0:0"
    engine.push_files("seeded", [RootfsFile("/tmp/pushed", b"hi",
                                            uid=1000, gid=1000)])
    assert run(engine, "seeded", "stat", "-c", "%u:%g", "/tmp/pushed") \
        == "1000:1000"


def test_files_never_follow_symlinks(engine, image, tmp_path):
    engine.create("linky", "busybox")
    rootfs = engine.config.containers_dir / "linky" / "rootfs"
    target = tmp_path / "host-dir"
    target.mkdir()
    os.symlink(str(target), rootfs / "escape")
    with pytest.raises(errors.OperationFailed, match="symlink"):
        engine.push_files("linky", [RootfsFile("/escape/owned", b"x")])
    assert list(target.iterdir()) == []
    with pytest.raises(errors.InvalidConfig):
        engine.push_files("linky", [RootfsFile("/../../etc/x", b"x")])
