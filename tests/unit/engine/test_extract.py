"""Safe rootfs extraction: what an OS tree needs, and every escape refused.

Runs as root (owners and setuid bits are the point). Attacks aim at a
directory ``outside`` next to ``dest``, never at the host.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from nova_lxd.engine import errors
from nova_lxd.engine.images.extract import (
    ExtractStats,
    extract_rootfs,
    scan_rootfs,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

MTIME = 1_600_000_000
BIG = 1 << 30
COMPRESSIONS = ("none", "gz", "xz", "bz2", "zst")


def compress(raw: bytes, kind: str) -> bytes:
    return {
        "none": lambda b: b,
        "gz": gzip.compress,
        "xz": lzma.compress,
        "bz2": bz2.compress,
        "zst": lambda b: zstandard.ZstdCompressor().compress(b),
    }[kind](raw)


def entry(name: str, kind: str = "f", data: bytes = b"", *,
          mode: int | None = None, uid: int = 0, gid: int = 0,
          mtime: float = MTIME, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE,
                 "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE,
                 "p": tarfile.FIFOTYPE, "c": tarfile.CHRTYPE,
                 "b": tarfile.BLKTYPE}[kind]
    info.mode = mode if mode is not None else (
        0o755 if kind == "d" else 0o644)
    info.uid, info.gid, info.mtime = uid, gid, mtime
    info.linkname = link
    if kind == "f":
        info.size = len(data)
    return info, (io.BytesIO(data) if kind == "f" else None)


def build_tar(path: Path, entries: list, kind: str = "none") -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w",
                      format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, data)
    path.write_bytes(compress(buf.getvalue(), kind))
    return path


def make_busybox_tree(root: Path) -> int:
    """A bootable busybox-static rootfs; returns its entry count."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc",
              "sys", "root", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    applets = subprocess.run(["/bin/busybox", "--list-full"], check=True,
                             capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "bin/busybox" and not (root / applet).exists():
            os.symlink("/bin/busybox", root / applet)
    (root / "etc" / "hostname").write_text("busybox\n")
    os.chmod(root / "tmp", 0o1777)
    return sum(1 for _ in root.rglob("*")) + 1  # plus the root itself


@pytest.fixture(scope="module")
def busybox_tgz(tmp_path_factory) -> tuple[Path, int]:
    work = tmp_path_factory.mktemp("busybox")
    count = make_busybox_tree(work / "rootfs")
    tgz = work / "busybox.tar.gz"
    subprocess.run(["tar", "-czf", str(tgz), "--numeric-owner", "-C",
                    str(work / "rootfs"), "."], check=True)
    return tgz, count


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    (tmp_path / "outside").mkdir()
    return d


def extract(src: Path, dest: Path, **kw) -> ExtractStats:
    kw.setdefault("max_bytes", BIG)
    kw.setdefault("max_members", 100_000)
    return extract_rootfs(src, dest, **kw)


def test_busybox_rootfs_extracts_fast_and_runs(busybox_tgz, dest):
    tgz, count = busybox_tgz
    start = time.perf_counter()
    stats = extract(tgz, dest)
    elapsed = time.perf_counter() - start
    assert stats.members == count
    assert stats.skipped == 0
    assert stats.bytes == os.path.getsize("/bin/busybox") + 8
    assert os.readlink(dest / "bin" / "sh") == "/bin/busybox"
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    out = subprocess.run([str(dest / "bin" / "busybox"), "echo", "hi"],
                         check=True, capture_output=True, text=True)
    assert out.stdout == "hi\n"
    # Tens of ms on this VM; the bound only catches a pathology.
    assert elapsed < 5


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_every_compression_extracts(tmp_path, dest, kind):
    src = build_tar(tmp_path / "img.tar", [
        entry("./", "d"), entry("./etc/", "d"),
        entry("./etc/os-release", "f", b"ID=test\n" * 1000)], kind)
    stats = extract(src, dest)
    assert stats == ExtractStats(members=3, bytes=8000, skipped=0)
    assert (dest / "etc" / "os-release").read_bytes() == b"ID=test\n" * 1000


def test_modes_owners_and_times_are_preserved(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry(".", "d", mode=0o755, uid=0, gid=0, mtime=MTIME + 1),
        entry("tmp", "d", mode=0o1777, mtime=MTIME + 2),
        entry("srv", "d", mode=0o2775, uid=1000, gid=50, mtime=MTIME + 3),
        entry("srv/su", "f", b"x", mode=0o4755, uid=0, gid=0),
        entry("srv/sg", "f", b"x", mode=0o2755, uid=1000, gid=1001),
        entry("srv/link", "l", link="/srv/su", uid=7, gid=8,
              mtime=MTIME + 4),
    ])
    extract(src, dest)
    assert stat.S_IMODE(os.stat(dest / "tmp").st_mode) == 0o1777
    srv = os.stat(dest / "srv")
    assert (stat.S_IMODE(srv.st_mode), srv.st_uid, srv.st_gid) == (
        0o2775, 1000, 50)
    assert srv.st_mtime == MTIME + 3  # set after its entries were made
    su = os.stat(dest / "srv" / "su")
    assert (stat.S_IMODE(su.st_mode), su.st_uid) == (0o4755, 0)
    sg = os.stat(dest / "srv" / "sg")
    assert (stat.S_IMODE(sg.st_mode), sg.st_uid, sg.st_gid) == (
        0o2755, 1000, 1001)
    assert sg.st_mtime == MTIME
    link = os.lstat(dest / "srv" / "link")
    assert (link.st_uid, link.st_gid, link.st_mtime) == (7, 8, MTIME + 4)
    assert os.readlink(dest / "srv" / "link") == "/srv/su"
    assert os.stat(dest).st_mtime == MTIME + 1


def test_owners_are_shifted(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry("./", "d"),
        entry("./home/", "d", uid=1000, gid=1000),
        entry("./home/f", "f", b"x", mode=0o4750, uid=1000, gid=100),
        entry("./home/l", "l", link="f", uid=1, gid=2),
        entry("./var/lib/implicit", "f", b"y"),
    ])
    extract(src, dest, uid_shift=100000, gid_shift=200000)
    assert (os.stat(dest).st_uid, os.stat(dest).st_gid) == (100000, 200000)
    f = os.stat(dest / "home" / "f")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (
        101000, 200100, 0o4750)
    link = os.lstat(dest / "home" / "l")
    assert (link.st_uid, link.st_gid) == (100001, 200002)
    # Parents missing from the archive belong to the container's root.
    implicit = os.stat(dest / "var" / "lib")
    assert (implicit.st_uid, implicit.st_gid) == (100000, 200000)


def test_owner_out_of_range_once_shifted(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry("f", "f", b"x", uid=2 ** 32 - 10)])
    with pytest.raises(errors.InvalidImage, match="out of range"):
        extract(src, dest, uid_shift=100000)


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside/x",
                                  "a/../../outside/x", "./../outside/x"])
def test_escaping_names_are_refused(tmp_path, dest, name):
    src = build_tar(tmp_path / "img.tar", [
        entry("ok", "f", b"1"), entry(name, "f", b"pwned")])
    with pytest.raises(errors.UnsafeImage):
        extract(src, dest)
    with pytest.raises(errors.UnsafeImage):
        scan_rootfs(src, max_bytes=BIG, max_members=10)
    assert not (tmp_path / "outside" / "x").exists()


@pytest.mark.parametrize("target", ["/", "OUTSIDE", "../outside"])
def test_symlink_parent_in_archive_is_refused(tmp_path, dest, target):
    target = str(tmp_path / "outside") if target == "OUTSIDE" else target
    victim = "nova-lxd-test-must-not-exist"
    src = build_tar(tmp_path / "img.tar", [
        entry("etc", "l", link=target), entry(f"etc/{victim}", "f", b"x")])
    with pytest.raises(errors.UnsafeImage, match="symlink"):
        extract(src, dest)
    with pytest.raises(errors.UnsafeImage, match="symlink"):
        scan_rootfs(src, max_bytes=BIG, max_members=10)
    assert not (tmp_path / "outside" / victim).exists()
    assert not os.path.lexists(f"/{victim}")


def test_deep_symlink_parent_is_refused(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry("usr/lib", "d"), entry("usr/lib/x", "l", link="../../.."),
        entry("usr/lib/x/y/z", "f", b"x")])
    with pytest.raises(errors.UnsafeImage):
        extract(src, dest)


def test_symlink_parent_already_on_disk_is_refused(tmp_path, dest):
    os.symlink(tmp_path / "outside", dest / "etc")
    src = build_tar(tmp_path / "img.tar", [entry("etc/passwd", "f", b"x")])
    with pytest.raises(errors.UnsafeImage, match="symlink"):
        extract(src, dest)
    assert not (tmp_path / "outside" / "passwd").exists()


def test_a_file_replaces_a_symlink_without_following_it(tmp_path, dest):
    victim = tmp_path / "outside" / "victim"
    victim.write_text("host data")
    src = build_tar(tmp_path / "img.tar", [
        entry("x", "l", link=str(victim)), entry("x", "f", b"image data"),
        entry("p", "l", link=str(victim)), entry("p", "p")])
    extract(src, dest)
    assert victim.read_text() == "host data"
    assert (dest / "x").read_bytes() == b"image data"
    assert not (dest / "x").is_symlink()
    # The fifo is skipped: the symlink stays as it was, never followed.
    assert os.readlink(dest / "p") == str(victim)
    assert stat.S_ISREG(os.lstat(victim).st_mode)


def test_a_directory_is_never_replaced(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry("etc", "d"), entry("etc", "l", link="/")])
    with pytest.raises(errors.InvalidImage, match="replace a directory"):
        extract(src, dest)
    with pytest.raises(errors.InvalidImage, match="replace a directory"):
        scan_rootfs(src, max_bytes=BIG, max_members=10)
    assert (dest / "etc").is_dir() and not (dest / "etc").is_symlink()


def test_hard_links(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry("bin/a", "f", b"data", mode=0o4755),
        entry("./bin/b", "h", link="./bin/a")])
    stats = extract(src, dest)
    assert stats.members == 2  # implicit parents are not members
    a, b = os.stat(dest / "bin" / "a"), os.stat(dest / "bin" / "b")
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)


@pytest.mark.parametrize("link", [
    "/etc/passwd", "../outside/victim", "sym", "later", "missing", "d",
    "self"])
def test_hard_link_escapes_are_refused(tmp_path, dest, link):
    victim = tmp_path / "outside" / "victim"
    victim.write_text("host data")
    src = build_tar(tmp_path / "img.tar", [
        entry("sym", "l", link=str(victim)), entry("d", "d"),
        entry("self", "h", link=link), entry("later", "f", b"x")])
    with pytest.raises(errors.UnsafeImage, match="hard link"):
        extract(src, dest)
    with pytest.raises(errors.UnsafeImage, match="hard link"):
        scan_rootfs(src, max_bytes=BIG, max_members=10)
    assert os.stat(victim).st_nlink == 1


def test_device_nodes_are_skipped_and_counted(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry("dev", "d"), entry("dev/null", "c"), entry("dev/sda", "b"),
        entry("dev/initctl", "p")])
    stats = extract(src, dest)
    assert stats == ExtractStats(members=1, bytes=0, skipped=3)
    assert os.listdir(dest / "dev") == []
    assert scan_rootfs(src, max_bytes=BIG, max_members=10) == stats


def test_fifos_are_skipped_and_counted(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry("run", "d"), entry("run/initctl", "p", mode=0o600),
        entry("etc/hostname", "p"), entry("etc/hostname", "f", b"box\n"),
        entry("srv/queue", "p", mode=0o666, uid=5)])
    stats = extract(src, dest)
    assert stats == ExtractStats(members=2, bytes=4, skipped=3)
    assert os.listdir(dest / "run") == []
    assert (dest / "etc" / "hostname").read_bytes() == b"box\n"
    # A skipped member makes no parent either.
    assert not (dest / "srv").exists()
    assert scan_rootfs(src, max_bytes=BIG, max_members=10) == stats


def test_size_bomb_is_stopped_while_streaming(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry(f"f{i}", "f", b"x" * 1000) for i in range(5)], "gz")
    with pytest.raises(errors.ImageTooLarge, match="2500"):
        extract(src, dest, max_bytes=2500)
    assert sorted(os.listdir(dest)) == ["f0", "f1"]
    with pytest.raises(errors.ImageTooLarge):
        scan_rootfs(src, max_bytes=2500, max_members=10)


def test_declared_size_is_refused_before_reading_the_data(tmp_path, dest):
    # A 64 GiB member whose data is not even there: refused on its header.
    info, _ = entry("huge", "f")
    info.size = 64 << 30
    raw = info.tobuf(tarfile.PAX_FORMAT)
    src = tmp_path / "huge.tar"
    src.write_bytes(raw + b"\0" * 1024)
    with pytest.raises(errors.ImageTooLarge):
        extract(src, dest, max_bytes=20 << 30)
    assert os.listdir(dest) == []


def test_member_bomb_is_stopped_while_streaming(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry(f"d{i}", "d") for i in range(50)])
    with pytest.raises(errors.ImageTooLarge, match="10 members"):
        extract(src, dest, max_members=10)
    assert len(os.listdir(dest)) == 10


def test_huge_metadata_header_is_refused(tmp_path, dest):
    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    info.size = 1 << 30
    src = tmp_path / "longname.tar"
    src.write_bytes(info.tobuf(tarfile.USTAR_FORMAT) + b"a" * 4096)
    with pytest.raises(errors.InvalidImage, match="metadata header"):
        extract(src, dest)


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"#!/bin/sh\necho this is no tar\n" * 40, "not a tar"),
    (gzip.compress(b"plain text, not a tar " * 100), "tar"),
    (b"\x1f\x8b" + b"junk" * 300, "gz data"),
])
def test_non_tar_input_is_invalid(tmp_path, dest, data, reason):
    src = tmp_path / "junk"
    src.write_bytes(data)
    with pytest.raises(errors.InvalidImage, match=reason):
        extract(src, dest)


def test_missing_end_marker_is_taken_for_truncation(tmp_path, dest):
    whole = build_tar(tmp_path / "img", [entry("a", "f", b"x" * 512),
                                         entry("b", "f", b"y")])
    src = tmp_path / "cut.tar"
    src.write_bytes(whole.read_bytes()[:1024])  # a, whole; b, missing
    with pytest.raises(errors.InvalidImage, match="truncated"):
        extract(src, dest)


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_truncated_input_is_invalid(tmp_path, dest, kind):
    whole = build_tar(tmp_path / "img", [
        entry("a", "f", os.urandom(50_000)),
        entry("b", "f", os.urandom(50_000))], kind).read_bytes()
    src = tmp_path / "cut"
    src.write_bytes(whole[:len(whole) * 2 // 3])
    with pytest.raises(errors.InvalidImage):
        extract(src, dest)


def test_corrupt_header_mid_archive_is_not_taken_for_the_end(tmp_path,
                                                              dest):
    raw = bytearray(build_tar(tmp_path / "img", [
        entry("a", "f", b"x" * 512), entry("b", "f", b"y")]).read_bytes())
    raw[2 * 512 + 100] ^= 0xFF  # b's header: after a's header and data
    src = tmp_path / "bad.tar"
    src.write_bytes(bytes(raw))
    with pytest.raises(errors.InvalidImage, match="member 2: bad checksum"):
        extract(src, dest)


def test_strip_prefix_takes_the_rootfs_of_a_unified_tarball(tmp_path, dest):
    src = build_tar(tmp_path / "unified.tar", [
        entry("metadata.yaml", "f", b"architecture: x86_64\n"),
        entry("rootfs", "d", mode=0o755, uid=0),
        entry("rootfs/bin/busybox", "f", b"elf", mode=0o755),
        entry("rootfs/bin/sh", "h", link="rootfs/bin/busybox"),
        entry("rootfsX/evil", "f", b"x"),
        entry("templates/hostname.tpl", "f", b"{{ name }}"),
    ], "xz")
    stats = extract(src, dest, strip_prefix="rootfs")
    assert stats.members == 3
    assert sorted(os.listdir(dest)) == ["bin"]
    assert os.stat(dest / "bin" / "sh").st_nlink == 2


def test_hard_link_out_of_the_prefix_is_refused(tmp_path, dest):
    src = build_tar(tmp_path / "unified.tar", [
        entry("metadata.yaml", "f", b"x"),
        entry("rootfs/meta", "h", link="metadata.yaml")])
    with pytest.raises(errors.UnsafeImage):
        extract(src, dest, strip_prefix="rootfs")


def test_sparse_files_are_filled_in(tmp_path, dest):
    tree = tmp_path / "tree"
    tree.mkdir()
    with open(tree / "sparse", "wb") as f:
        f.seek(1 << 20)
        f.write(b"middle")
        f.truncate(3 << 20)
    src = tmp_path / "sparse.tar"
    subprocess.run(["tar", "-cSf", str(src), "-C", str(tree), "sparse"],
                   check=True)
    stats = extract(src, dest)
    assert stats.bytes == 3 << 20
    data = (dest / "sparse").read_bytes()
    assert len(data) == 3 << 20
    assert data[1 << 20:(1 << 20) + 6] == b"middle"
    assert data.count(0) == (3 << 20) - 6


def test_unknown_member_types_are_skipped(tmp_path, dest):
    info, data = entry("odd", "f", b"payload")
    info.type = b"Z"
    src = build_tar(tmp_path / "img.tar", [(info, data),
                                           entry("ok", "f", b"x")])
    assert extract(src, dest) == ExtractStats(members=1, bytes=1,
                                              skipped=1)
    assert os.listdir(dest) == ["ok"]


def test_name_too_long_for_the_host_is_invalid(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [entry("a" * 300, "f", b"x")])
    with pytest.raises(errors.InvalidImage, match="too long"):
        extract(src, dest)


def test_nul_in_a_name_is_refused_naming_the_member(tmp_path, dest):
    # A pax path record may carry a NUL that the ustar field cannot.
    info, data = entry("etc/innocent", "f", b"x")
    info.pax_headers = {"path": "etc/a\x00/../../outside/x"}
    src = build_tar(tmp_path / "img.tar", [(info, data)])
    for run in (lambda: extract(src, dest),
                lambda: scan_rootfs(src, max_bytes=BIG, max_members=10)):
        with pytest.raises(errors.UnsafeImage,
                           match=r"member 'etc/a\\x00.*NUL"):
            run()
    assert os.listdir(dest) == []
    assert os.listdir(tmp_path / "outside") == []


@pytest.mark.parametrize("name,what", [
    ("etc/" + "a" * 256, "name component of 256 bytes"),
    # 128 two-byte characters: 128 characters but 256 bytes.
    ("etc/" + "\u00e9" * 128, "name component of 256 bytes"),
    ("/".join(["d" * 200] * 21), "path of 4220 bytes"),
])
def test_overlong_names_are_refused_naming_the_member(tmp_path, dest, name,
                                                      what):
    src = build_tar(tmp_path / "img.tar", [
        entry("ok", "f", b"1"), entry(name, "f", b"x")])
    for run in (lambda: extract(src, dest),
                lambda: scan_rootfs(src, max_bytes=BIG, max_members=10)):
        with pytest.raises(errors.UnsafeImage, match=what) as exc:
            run()
        assert name[:40] in str(exc.value)
        assert "too long" in str(exc.value)


def test_names_at_the_limits_extract(tmp_path, dest):
    long_component = "c" * 255
    deep = "/".join(["d" * 250] * 15)  # 3,764 bytes: under PATH_MAX
    src = build_tar(tmp_path / "img.tar", [
        entry(long_component, "f", b"1"),
        entry("\u00e9" * 127, "f", b"2")])
    assert extract(src, dest).members == 2
    assert (dest / long_component).read_bytes() == b"1"
    deep_src = build_tar(tmp_path / "deep.tar", [entry(deep, "f", b"x")])
    # Scanned fine; whether the host can make it depends on where dest
    # is, so only the scan is asserted.
    stats = scan_rootfs(deep_src, max_bytes=BIG, max_members=10)
    assert stats.members == 1


def test_overlong_symlink_target_is_refused(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [
        entry("l", "l", link="/" + "x/" * 2100)])
    with pytest.raises(errors.InvalidImage, match="symlink 'l'"):
        extract(src, dest)


def test_every_refusal_names_the_member(tmp_path, dest):
    cases = [
        ([entry("etc", "l", link="/"), entry("etc/shadow", "f", b"x")],
         {}, errors.UnsafeImage, "etc/shadow"),
        ([entry(f"f{i}", "f") for i in range(5)],
         {"max_members": 3}, errors.ImageTooLarge, "f3"),
        ([entry(f"f{i}", "f", b"x" * 10) for i in range(5)],
         {"max_bytes": 25}, errors.ImageTooLarge, "f2"),
        ([entry("h", "h", link="nothing")], {}, errors.UnsafeImage, "'h'"),
    ]
    for i, (entries, limits, error, member) in enumerate(cases):
        src = build_tar(tmp_path / f"img{i}.tar", entries)
        target = tmp_path / f"dest{i}"
        target.mkdir()
        with pytest.raises(error) as exc:
            extract(src, target, **limits)
        assert member in str(exc.value)
        kw = {"max_bytes": BIG, "max_members": 10} | limits
        with pytest.raises(error) as exc:
            scan_rootfs(src, **kw)
        assert member in str(exc.value)


def test_root_entry_must_be_a_directory(tmp_path, dest):
    src = build_tar(tmp_path / "img.tar", [entry(".", "l", link="/")])
    with pytest.raises(errors.InvalidImage, match="root"):
        extract(src, dest)


def test_dest_must_be_a_directory(tmp_path):
    src = build_tar(tmp_path / "img.tar", [entry("a", "f", b"x")])
    os.symlink(tmp_path, tmp_path / "link")
    with pytest.raises(NotADirectoryError):
        extract(src, tmp_path / "link")


def test_scan_matches_extract_and_writes_nothing(busybox_tgz, tmp_path):
    tgz, count = busybox_tgz
    before = sorted(os.listdir(tmp_path))
    stats = scan_rootfs(tgz, max_bytes=BIG, max_members=100_000)
    assert stats.members == count
    assert stats.bytes == os.path.getsize("/bin/busybox") + 8
    assert sorted(os.listdir(tmp_path)) == before
