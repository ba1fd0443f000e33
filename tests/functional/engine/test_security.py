"""Secure by default: isolated id maps, seccomp, dropped capabilities."""

from __future__ import annotations

import os

from .helpers import proc_status

CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME = 16, 17, 25
CAP_MAC_OVERRIDE, CAP_MAC_ADMIN = 32, 33


def test_root_inside_is_unprivileged_on_host(engine, image):
    record = engine.create("mapped", "busybox")
    engine.start("mapped")
    pid = engine.state("mapped").pid
    uids = [int(u) for u in proc_status(pid)["Uid"].split()]
    gids = [int(g) for g in proc_status(pid)["Gid"].split()]
    assert record.idmap is not None
    assert record.idmap.uid_base >= 1000000
    assert uids == [record.idmap.uid_base] * 4
    assert gids == [record.idmap.gid_base] * 4
    # Inside, it is root, and the rootfs belongs to it.
    assert engine.execute("mapped", ["id", "-u"]).stdout == b"0\n"
    listing = engine.execute("mapped", ["ls", "-ln", "/bin/busybox"])
    assert listing.stdout.split()[2:4] == [b"0", b"0"]
    # With an idmapped mount nothing was chowned on the host.
    rootfs = engine.config.containers_dir / "mapped" / "rootfs"
    assert record.idmapped_mount is True
    assert os.stat(rootfs / "bin" / "busybox").st_uid == 0


def test_each_container_gets_its_own_range(engine, image):
    first = engine.create("one", "busybox")
    second = engine.create("two", "busybox")
    a, b = first.idmap, second.idmap
    assert a.size == b.size == 65536
    assert (a.uid_base + a.size <= b.uid_base
            or b.uid_base + b.size <= a.uid_base)
    engine.delete("one")
    third = engine.create("three", "busybox")
    assert third.idmap.uid_base == a.uid_base, "freed range not reused"


def test_denied_syscall_fails_inside(engine, image):
    engine.launch("filtered", "busybox")
    result = engine.execute("filtered", ["rmmod", "nonexistent"])
    assert result.exit_code != 0
    # ENOSYS comes from the seccomp filter; without it the kernel would
    # answer EPERM (no CAP_SYS_MODULE) or ENOENT.
    assert b"Function not implemented" in result.stderr


def test_capabilities_dropped(engine, image):
    engine.launch("capless", "busybox")
    pid = engine.state("capless").pid
    bounding = int(proc_status(pid)["CapBnd"], 16)
    for cap in (CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME,
                CAP_MAC_OVERRIDE, CAP_MAC_ADMIN):
        assert not bounding & (1 << cap), f"capability {cap} kept"


def test_privileged_only_when_asked(engine, image):
    record = engine.create("priv", "busybox", privileged=True)
    assert record.idmap is None
    engine.start("priv")
    pid = engine.state("priv").pid
    assert proc_status(pid)["Uid"].split()[0] == "0"
    result = engine.execute("priv", ["rmmod", "nonexistent"])
    assert b"Function not implemented" in result.stderr


def test_chown_shift_fallback(engine_root, busybox_tarball):
    from nova_lxd.engine.api import Engine

    from ..conftest import make_config
    engine = Engine(make_config(engine_root, idmapped_mounts="never"))
    engine.import_image(busybox_tarball, aliases=("busybox",))
    record = engine.create("shifted", "busybox")
    assert record.idmapped_mount is False
    rootfs = engine.config.containers_dir / "shifted" / "rootfs"
    assert os.stat(rootfs / "bin" / "busybox").st_uid == record.idmap.uid_base
    assert os.lstat(rootfs / "etc" / "hostname").st_uid == (
        record.idmap.uid_base)
    engine.start("shifted")
    assert engine.execute("shifted", ["id", "-u"]).stdout == b"0\n"
    listing = engine.execute("shifted", ["ls", "-ln", "/bin/busybox"])
    assert listing.stdout.split()[2:4] == [b"0", b"0"]
