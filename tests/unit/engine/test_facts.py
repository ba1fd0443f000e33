"""OS facts of a rootfs, from a tarball or a directory, never from the host."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nova_lxd.engine.images import facts
from nova_lxd.engine.images.facts import OsFacts
from nova_lxd.testing.busybox import (
    build_busybox_rootfs,
    build_busybox_tarball,
    busybox_version,
)
from nova_lxd.testing.canary import Canary
from tests.unit.engine.test_extract import build_tar, entry

DEBIAN = (b'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian '
          b'GNU/Linux"\nVERSION_ID="13"\nID=debian\n')
FEDORA = (b"NAME=Fedora\nVERSION_ID=40\nID=fedora\n"
          b"PRETTY_NAME='Fedora Linux 40 (Container Image)'\n")


def elf(machine: int, is64: bool = True, little: bool = True) -> bytes:
    order = "little" if little else "big"
    return (b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1])
            + bytes(9) + (2).to_bytes(2, order)
            + machine.to_bytes(2, order) + bytes(44))


def make_tree(root: Path, spec: dict[str, bytes | str | None]) -> Path:
    """bytes: a file; str: a symlink to it; None: a directory."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, what in spec.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if what is None:
            path.mkdir(exist_ok=True)
        elif isinstance(what, str):
            os.symlink(what, path)
        else:
            path.write_bytes(what)
            os.chmod(path, 0o755)
    return root


def make_tarball(path: Path, spec: dict[str, bytes | str | None],
                 kind: str = "gz") -> Path:
    entries = []
    for rel, what in spec.items():
        if what is None:
            entries.append(entry(f"./{rel}", "d"))
        elif isinstance(what, str):
            entries.append(entry(f"./{rel}", "l", link=what))
        else:
            entries.append(entry(f"./{rel}", "f", what, mode=0o755))
    return build_tar(path, entries, kind)


def both(tmp_path: Path, spec: dict) -> list[OsFacts]:
    """The facts from a directory and from a tarball of the same tree, the
    tarball with its members in the given order and reversed (a link may
    come before or after its target)."""
    tree = make_tree(tmp_path / "tree", spec)
    forward = make_tarball(tmp_path / "f.tar.gz", spec)
    backward = make_tarball(tmp_path / "b.tar.gz",
                            dict(reversed(spec.items())))
    return [facts.from_directory(tree), facts.from_tarball(forward),
            facts.from_tarball(backward)]


MERGED_USR = {
    "usr/bin/bash": elf(183),
    "usr/lib/systemd/systemd": elf(183),
    "usr/lib/os-release": DEBIAN,
    "usr/sbin/init": "../lib/systemd/systemd",
    "bin": "usr/bin",
    "sbin": "usr/sbin",
    "lib": "usr/lib",
    "etc/os-release": "../usr/lib/os-release",
}


def test_busybox_rootfs(tmp_path):
    version = busybox_version()
    expected = OsFacts("busybox", version,
                       f"BusyBox {version} (nova-lxd test image)", "x86_64")
    tree = build_busybox_rootfs(tmp_path / "tree")
    assert facts.from_directory(tree) == expected
    for kind in ("gz", "zst"):
        tarball = build_busybox_tarball(tmp_path / f"bb.{kind}", kind)
        assert facts.from_tarball(tarball) == expected
    assert expected.to_properties() == {
        "os_distro": "busybox", "os_version": version,
        "os_name": f"BusyBox {version} (nova-lxd test image)",
        "architecture": "x86_64"}


def test_merged_usr_symlinks(tmp_path):
    expected = OsFacts("debian", "13", "Debian GNU/Linux 13 (trixie)",
                       "aarch64")
    assert both(tmp_path, MERGED_USR) == [expected] * 3


def test_absolute_symlinks_resolve_inside_the_rootfs(tmp_path):
    # The host has its own /lib/systemd/systemd and /usr/lib/os-release:
    # following these links on the host would give x86_64 and Debian.
    spec = {"lib/systemd/systemd": elf(21),  # ppc64le
            "usr/lib/os-release": FEDORA,
            "sbin/init": "/lib/systemd/systemd",
            "etc/os-release": "/usr/lib/os-release"}
    expected = OsFacts("fedora", "40", "Fedora Linux 40 (Container Image)",
                       "ppc64le")
    assert both(tmp_path, spec) == [expected] * 3


@pytest.mark.parametrize("link", [
    "/etc/os-release",                  # itself, from the root: a loop
    "../../../../../../etc/os-release",  # '..' stops at the root: a loop
    "/usr/lib/os-release",              # absent in the image, not the host
    "../../../../../usr/lib/os-release",
])
def test_symlink_escaping_to_the_host_is_not_followed(tmp_path, link):
    assert Path("/etc/os-release").exists()  # what must not be read
    spec = {"sbin/init": elf(62), "etc/os-release": link}
    assert both(tmp_path, spec) == [OsFacts(architecture="x86_64")] * 3


def test_directory_symlink_escaping_to_the_host_is_not_followed(tmp_path):
    spec = {"etc": "/etc", "usr": "../../../../usr", "sbin/init": elf(3,
                                                                       False)}
    assert both(tmp_path, spec) == [OsFacts(architecture="i686")] * 3


def test_host_file_named_by_an_absolute_link_is_never_opened(tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    tree = make_tree(tmp_path / "tree", {
        "sbin/init": str(host / "init"),
        "etc/os-release": str(host / "os-release"),
        "usr/lib/os-release": "../../../host/os-release"})
    with Canary(host / "os-release", DEBIAN) as release, \
            Canary(host / "init", elf(62)) as init:
        assert facts.from_directory(tree) == OsFacts()
    assert not release.events and not init.events


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_fifo_or_a_device_is_not_opened(tmp_path):
    tree = make_tree(tmp_path / "tree", {"etc": None, "usr/lib": None,
                                         "sbin/init": elf(62)})
    os.mkfifo(tree / "etc" / "os-release")  # opening it could block
    os.mknod(tree / "usr" / "lib" / "os-release", 0o600 | stat.S_IFCHR,
             os.makedev(1, 3))  # /dev/null: harmless, and watchable
    with Canary(tree / "usr" / "lib" / "os-release", b"") as device:
        assert facts.from_directory(tree) == OsFacts(architecture="x86_64")
    assert not device.events


def test_the_tree_changing_under_the_reader_is_not_followed(tmp_path):
    tree = make_tree(tmp_path / "tree", {"etc/os-release": DEBIAN})
    lookup = facts.from_directory_lookup(tree)
    assert facts.resolve("etc/os-release", lookup) == "etc/os-release"
    # etc becomes a link to the host's /etc after the path was resolved:
    # the read opens components with O_NOFOLLOW and finds nothing.
    os.rename(tree / "etc", tree / "etc.old")
    os.symlink("/etc", tree / "etc")
    assert facts._Tree(tree).read("etc/os-release", 4096) is None


def test_hard_links_and_later_members_in_a_tarball(tmp_path):
    src = build_tar(tmp_path / "img.tar", [
        entry("lib/systemd/systemd", "f", elf(243), mode=0o755),
        entry("sbin/init", "h", link="lib/systemd/systemd"),
        entry("etc/os-release", "f", b"ID=old\n"),
        entry("etc/os-release", "f", b"ID=new\n"),  # replaces it
    ])
    assert facts.from_tarball(src) == OsFacts("new", architecture="riscv64")


def test_non_elf_init_falls_back_to_a_shell(tmp_path):
    spec = {"sbin/init": b"#!/bin/sh\nexec /bin/busybox init\n",
            "bin/sh": elf(40, is64=False)}
    assert both(tmp_path, spec) == [OsFacts(architecture="armv7l")] * 3


def test_nothing_known_is_no_error(tmp_path):
    assert both(tmp_path, {"srv/data": b"x"}) == [OsFacts()] * 3
    assert OsFacts().to_properties() == {}


@pytest.mark.parametrize("head,arch", [
    (elf(62), "x86_64"),
    (elf(183), "aarch64"),
    (elf(40, is64=False), "armv7l"),
    (elf(3, is64=False), "i686"),
    (elf(21), "ppc64le"),
    (elf(21, little=False), "ppc64"),
    (elf(22, little=False), "s390x"),
    (elf(243), "riscv64"),
    (elf(9999), None),
    (b"#!/bin/sh\n" + bytes(20), None),
    (b"\x7fELF\x02", None),
])
def test_elf_architectures(head, arch):
    assert facts.elf_architecture(head) == arch


def test_os_release_parsing():
    text = ('# a comment\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
            "ID=ubuntu\nID_LIKE=debian\n"
            "PRETTY_NAME='Ubuntu 22.04.3 LTS'\n"
            'VARIANT="with \\"quotes\\" and \\$dollar"\n'
            'BROKEN="unterminated\n'
            "not a line\n=novalue\n")
    parsed = facts.parse_os_release(text)
    assert parsed == {"NAME": "Ubuntu", "VERSION_ID": "22.04",
                      "ID": "ubuntu", "ID_LIKE": "debian",
                      "PRETTY_NAME": "Ubuntu 22.04.3 LTS",
                      "VARIANT": 'with "quotes" and $dollar',
                      "BROKEN": "unterminated"}


def test_os_release_values_are_bounded_and_printable():
    parsed = facts.parse_os_release('ID="a\tb\x1b[31m"\nNAME=' + "x" * 1000)
    assert parsed["ID"] == "ab[31m"
    assert len(parsed["NAME"]) == 255


@pytest.mark.parametrize("name,canonical", [
    ("amd64", "x86_64"), ("x86_64", "x86_64"), ("arm64", "aarch64"),
    ("armhf", "armv7l"), ("i386", "i686"), ("ppc64el", "ppc64le"),
    ("S390X", "s390x"), ("riscv64", "riscv64"), ("mips64", "mips64"),
])
def test_architecture_names(name, canonical):
    assert facts.normalise_architecture(name) == canonical


def test_resolve_rules():
    links = {"a": "b/c", "b": "/x", "x/c": "../../../d", "loop": "loop",
             "f": None}

    def lookup(path):
        if path in links:
            target = links[path]
            return ("file", None) if target is None else ("link", target)
        return ("dir", None)

    assert facts.resolve("a/e", lookup) == "d/e"
    assert facts.resolve("loop", lookup) is None
    assert facts.resolve("f/below", lookup) is None  # a file is no dir
    assert facts.resolve("../../etc/./passwd", lookup) == "etc/passwd"
