from pathlib import Path

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.idmap import Idmap
from nova_lxd.engine.render import config


def spec(**kw):
    base = dict(name="c1", rootfs=Path("/r/c1/rootfs"),
                console_log=Path("/r/c1/console.log"),
                lxc_log=Path("/r/c1/lxc.log"),
                idmap=Idmap(uid_base=1065536, gid_base=1065536, size=65536),
                idmapped_mount=True, halt_signal="SIGUSR1")
    base.update(kw)
    return config.ConfigSpec(**base)


def test_unprivileged_idmapped():
    pairs = config.render_base(spec())
    assert ("lxc.rootfs.path", "dir:/r/c1/rootfs") in pairs
    assert ("lxc.rootfs.options", "idmap=container") in pairs
    assert ("lxc.idmap", "u 0 1065536 65536") in pairs
    assert ("lxc.idmap", "g 0 1065536 65536") in pairs
    assert ("lxc.signal.halt", "SIGUSR1") in pairs
    assert ("lxc.console.rotate", "1") in pairs
    assert ("lxc.uts.name", "c1") in pairs


def test_chown_shifted_has_no_idmapped_mount():
    keys = dict(config.render_base(spec(idmapped_mount=False)))
    assert "lxc.rootfs.options" not in keys


def test_privileged_has_no_idmap():
    keys = [k for k, _ in config.render_base(spec(idmap=None))]
    assert "lxc.idmap" not in keys
    assert "lxc.rootfs.options" not in keys


@pytest.mark.parametrize("layout,prefix", [("v1", "lxc.cgroup."),
                                           ("v2", "lxc.cgroup2.")])
def test_devices_rules_follow_cgroup_layout(layout, prefix):
    pairs = config.render_base(spec(devices_cgroup=layout))
    rules = [(k, v) for k, v in pairs if ".devices." in k]
    assert rules[0] == (prefix + "devices.deny", "a")
    assert (prefix + "devices.allow", "c 1:3 rwm") in rules
    assert not config.render_base(spec(devices_cgroup=None))[-1][0].endswith(
        "allow")


def test_to_text_refuses_injection():
    text = config.to_text([("lxc.uts.name", "c1")])
    assert text.splitlines()[-1] == "lxc.uts.name = c1"
    with pytest.raises(errors.InvalidInput):
        config.to_text([("lxc.uts.name", "c1\nlxc.cap.drop =")])


def test_nesting_mounts_unmasked_proc_and_sys():
    entries = [v for k, v in config.render_base(spec(nesting=True))
               if k == "lxc.mount.entry"]
    assert entries == ["proc dev/.lxc/proc proc create=dir,optional 0 0",
                       "sys dev/.lxc/sys sysfs create=dir,optional 0 0"]
    assert not [k for k, _ in config.render_base(spec())
                if k == "lxc.mount.entry"]


def test_hostname_is_the_uts_name():
    pairs = dict(config.render_base(spec(hostname="web-1.example")))
    assert pairs["lxc.uts.name"] == "web-1.example"


def test_binds_are_idmapped_like_the_rootfs():
    entries = [v for k, v in config.render_base(spec(
        binds=((Path("/var/lib/x/rootfs"), "/mnt/rescue"),)))
        if k == "lxc.mount.entry"]
    assert entries == ["/var/lib/x/rootfs mnt/rescue none "
                       "bind,create=dir,idmap=container 0 0"]
    with pytest.raises(errors.InvalidInput, match="whitespace"):
        config.render_base(spec(binds=((Path("/a b"), "/mnt"),)))
