"""The busybox test image builders (needs Debian's busybox-static)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from nova_lxd.testing import busybox

pytestmark = pytest.mark.skipif(
    not busybox.BUSYBOX.is_file(),
    reason="needs /bin/busybox from busybox-static (tools/setup.sh)")


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(data).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return {m.name: m for m in tar.getmembers()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tarball_members(tmp_path) -> None:
    found = members(busybox.build_busybox_tarball(tmp_path / "bb.tar.gz"))
    init, binary = found["./sbin/init"], found["./bin/busybox"]
    assert init.issym() and init.linkname == "/bin/busybox"
    assert binary.isreg()
    assert binary.size == busybox.BUSYBOX.stat().st_size
    assert found["./bin/sh"].linkname == "/bin/busybox"
    assert found["./etc/init.d/rcS"].mode == 0o755
    assert found["./tmp"].mode == 0o1777
    assert all(n == "." or n.startswith("./") for n in found)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in found.values()} == {
        (0, 0, "", "")}


def test_tarball_is_deterministic(tmp_path) -> None:
    first = busybox.build_busybox_tarball(tmp_path / "a.tar.gz")
    second = busybox.build_busybox_tarball(tmp_path / "b.tar.gz")
    assert sha256(first) == sha256(second)


@pytest.mark.parametrize("name", [
    "bb.tar", "bb.tar.gz", "bb.tar.xz", "bb.tar.zst"])
def test_each_compression_readable(tmp_path, name) -> None:
    path = busybox.build_busybox_tarball(tmp_path / name)
    assert "./sbin/init" in members(path)


def test_explicit_compression(tmp_path) -> None:
    by_suffix = busybox.build_busybox_tarball(tmp_path / "bb.tar.zst")
    explicit = busybox.build_busybox_tarball(tmp_path / "bb.img", "zst")
    assert sha256(explicit) == sha256(by_suffix)


def test_compression_must_match_suffix(tmp_path) -> None:
    with pytest.raises(ValueError):
        busybox.build_busybox_tarball(tmp_path / "bb.tar.xz", "gz")
    with pytest.raises(ValueError):
        busybox.build_busybox_tarball(tmp_path / "bb.img", "lz4")


def test_rootfs_tree(tmp_path) -> None:
    root = busybox.build_busybox_rootfs(tmp_path / "rootfs")
    binary = root / "bin" / "busybox"
    assert binary.is_file() and not binary.is_symlink()
    assert os.access(binary, os.X_OK)
    assert os.readlink(root / "sbin" / "init") == "/bin/busybox"
    assert os.readlink(root / "bin" / "sh") == "/bin/busybox"
    assert "::sysinit:/etc/init.d/rcS" in (
        root / "etc" / "inittab").read_text()
    assert "nova-lxd busybox: booted" in (
        root / "etc" / "init.d" / "rcS").read_text()
    assert "ID=busybox\n" in (root / "etc" / "os-release").read_text()
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    for d in ("proc", "sys", "dev", "root", "run", "var/log", "usr/bin",
              "usr/sbin"):
        assert (root / d).is_dir()
    if os.geteuid() == 0:
        assert {(p.lstat().st_uid, p.lstat().st_gid)
                for p in [root, *root.rglob("*")]} == {(0, 0)}


def test_rootfs_matches_tarball(tmp_path) -> None:
    root = busybox.build_busybox_rootfs(tmp_path / "rootfs")
    on_disk = {"./" + str(p.relative_to(root)) for p in root.rglob("*")}
    in_tar = set(members(busybox.build_busybox_tarball(
        tmp_path / "bb.tar"))) - {"."}
    assert on_disk == in_tar


def test_rootfs_refuses_non_empty_dir(tmp_path) -> None:
    (tmp_path / "junk").touch()
    with pytest.raises(FileExistsError):
        busybox.build_busybox_rootfs(tmp_path)


def test_dynamic_busybox_refused(tmp_path) -> None:
    with pytest.raises(busybox.BusyboxError, match="statically linked"):
        busybox.build_busybox_tarball(tmp_path / "bb.tar",
                                      busybox=Path("/bin/ls"))
