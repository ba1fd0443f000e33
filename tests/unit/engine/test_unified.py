"""LXD unified tarballs repacked into rootfs tarballs, in one pass."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import yaml

from nova_lxd.engine import errors
from nova_lxd.engine.images import compression, detect, extract, unified
from nova_lxd.testing.busybox import build_busybox_rootfs
from tests.unit.engine.test_extract import BIG, compress, entry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

METADATA = {
    "architecture": "amd64",
    "creation_date": 1700000000,
    "properties": {"os": "Ubuntu", "release": "20.10",
                   "description": "Ubuntu groovy amd64 (20201022)",
                   "variant": "default"},
    "templates": {
        "/etc/hostname": {"when": ["create", "copy"],
                          "template": "hostname.tpl"},
        "/etc/hosts": {"when": ["start"], "template": "hosts.tpl",
                       "create_only": True,
                       "properties": {"default": "127.0.0.1"}},
    },
}
TEMPLATES = {"hostname.tpl": b"{{ container.name }}\n",
             "hosts.tpl": b"127.0.1.1 {{ container.name }}\n"}


def yaml_entry(metadata: dict | str, name: str = "metadata.yaml") -> tuple:
    text = metadata if isinstance(metadata, str) else yaml.safe_dump(
        metadata)
    return entry(name, "f", text.encode())


def build_unified(path: Path, rootfs: list, *, metadata: dict | str = None,
                  metadata_last: bool = False, kind: str = "gz",
                  templates: dict[str, bytes] | None = None) -> Path:
    meta = [yaml_entry(METADATA if metadata is None else metadata)]
    tpls = [entry("templates", "d")] + [
        entry(f"templates/{name}", "f", data)
        for name, data in (TEMPLATES if templates is None
                           else templates).items()]
    members = ([*rootfs, *tpls, *meta] if metadata_last
               else [*meta, *rootfs, *tpls])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w",
                      format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, data)
    path.write_bytes(compress(buf.getvalue(), kind))
    return path


def small_rootfs() -> list:
    return [entry("rootfs", "d", mode=0o755),
            entry("rootfs/etc", "d"),
            entry("rootfs/etc/hostname", "f", b"template-me\n"),
            entry("rootfs/bin", "d"),
            entry("rootfs/bin/busybox", "f", b"\x7fELF...", mode=0o4755,
                  uid=0, gid=0),
            entry("rootfs/bin/sh", "l", link="busybox"),
            entry("rootfs/bin/ash", "h", link="rootfs/bin/busybox")]


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with compression.open_decompressed(path) as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tar:
        return {m.name: m for m in tar}


def repack(src: Path, out: Path, **kw) -> unified.UnifiedMetadata:
    kw.setdefault("max_bytes", BIG)
    kw.setdefault("max_members", 10_000)
    return unified.repack(src, out, **kw)


def test_busybox_unified_tarball_becomes_a_rootfs_tarball(tmp_path):
    tree = build_busybox_rootfs(tmp_path / "tree")
    src = tmp_path / "unified.tar.xz"
    with tarfile.open(src, "w:xz") as tar:
        tar.addfile(*yaml_entry(METADATA))
        tar.add(tree, arcname="rootfs")
        for name, data in TEMPLATES.items():
            tar.addfile(*entry(f"templates/{name}", "f", data))
    out = tmp_path / "rootfs.tar.zst"

    meta = repack(src, out)

    assert compression.detect_compression(out) == "zst"
    names = members(out)
    assert "./bin/busybox" in names and "." in names
    assert not [n for n in names if n.startswith(("./rootfs", "rootfs",
                                                  "./templates",
                                                  "./metadata"))]
    dest = tmp_path / "dest"
    dest.mkdir()
    extract.extract_rootfs(out, dest, max_bytes=BIG, max_members=10_000)
    assert (dest / "bin" / "busybox").read_bytes() == (
        tree / "bin" / "busybox").read_bytes()
    assert os.readlink(dest / "sbin" / "init") == "/bin/busybox"
    assert (dest / "etc" / "os-release").read_bytes() == (
        tree / "etc" / "os-release").read_bytes()
    assert stat.S_IMODE(os.stat(dest / "tmp").st_mode) == 0o1777
    assert meta.architecture == "x86_64"  # LXD's amd64, normalised
    assert meta.creation_date == 1700000000
    # What was left in the work directory: the input, the tree, the out.
    assert sorted(os.listdir(tmp_path)) == ["dest", "rootfs.tar.zst",
                                            "tree", "unified.tar.xz"]


def test_properties_are_kept_as_lxd_reads_them(tmp_path):
    src = build_unified(tmp_path / "u.tar.gz", small_rootfs())
    meta = repack(src, tmp_path / "out.tar.zst")
    # "20.10" stays a string (implicit YAML typing would make it 20.1).
    assert meta.properties == METADATA["properties"]
    assert all(isinstance(v, str) for v in meta.properties.values())


def test_templates_are_returned_with_their_rules(tmp_path):
    src = build_unified(tmp_path / "u.tar", small_rootfs(), kind="none")
    meta = repack(src, tmp_path / "out.tar.zst")
    assert meta.templates == {
        "/etc/hostname": {"when": ["create", "copy"],
                          "template": "hostname.tpl", "create_only": False,
                          "properties": {},
                          "content": "{{ container.name }}\n"},
        "/etc/hosts": {"when": ["start"], "template": "hosts.tpl",
                       "create_only": True,
                       "properties": {"default": "127.0.0.1"},
                       "content": "127.0.1.1 {{ container.name }}\n"},
    }


def test_rootfs_is_re_rooted_with_links_owners_and_modes(tmp_path):
    src = build_unified(tmp_path / "u.tar.zst", small_rootfs(), kind="zst")
    out = tmp_path / "out.tar.zst"
    repack(src, out)
    m = members(out)
    assert sorted(m) == [".", "./bin", "./bin/ash", "./bin/busybox",
                         "./bin/sh", "./etc", "./etc/hostname"]
    assert m["./bin/ash"].islnk() and m["./bin/ash"].linkname == (
        "./bin/busybox")
    assert m["./bin/sh"].issym() and m["./bin/sh"].linkname == "busybox"
    assert m["./bin/busybox"].mode == 0o4755
    assert m["./bin/busybox"].size == len(b"\x7fELF...")
    assert m["."].isdir()


def test_metadata_after_rootfs_is_detected_and_read(tmp_path):
    src = build_unified(tmp_path / "u.tar.gz", small_rootfs(),
                        metadata_last=True)
    assert detect.detect(src).kind == "unified"
    meta = repack(src, tmp_path / "out.tar.zst")
    assert meta.properties["os"] == "Ubuntu"
    assert "/etc/hosts" in meta.templates


def test_xattrs_are_carried_and_other_pax_records_dropped(tmp_path):
    info, data = entry("rootfs/bin/ping", "f", b"ping")
    info.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x02",
                        "comment": "hello"}
    src = build_unified(tmp_path / "u.tar", [entry("rootfs", "d"),
                                             (info, data)], kind="none")
    out = tmp_path / "out.tar.zst"
    repack(src, out)
    pax = members(out)["./bin/ping"].pax_headers
    assert pax.get("SCHILY.xattr.security.capability") == "\x01\x02"
    assert "comment" not in pax


def test_fifos_and_devices_are_left_out(tmp_path):
    src = build_unified(tmp_path / "u.tar", [
        entry("rootfs", "d"), entry("rootfs/dev", "d"),
        entry("rootfs/dev/null", "c"), entry("rootfs/run/initctl", "p"),
        entry("rootfs/etc/hostname", "f", b"x")], kind="none")
    out = tmp_path / "out.tar.zst"
    repack(src, out)
    assert sorted(members(out)) == [".", "./dev", "./etc/hostname"]


@pytest.mark.parametrize("bad,error,words", [
    ([entry("rootfs/../../outside", "f", b"x")], errors.UnsafeImage,
     "'..'"),
    ([entry("/rootfs/etc/passwd", "f", b"x")], errors.UnsafeImage,
     "absolute"),
    ([entry("rootfs/etc", "l", link="/"),
      entry("rootfs/etc/passwd", "f", b"x")], errors.UnsafeImage,
     "symlink"),
    ([entry("rootfs/etc/shadow", "h", link="metadata.yaml")],
     errors.UnsafeImage, "hard link"),
    ([entry("rootfs/etc/shadow", "h", link="/etc/shadow")],
     errors.UnsafeImage, "hard link"),
    ([entry("templates/../../x.tpl", "f", b"x")], errors.UnsafeImage,
     "'..'"),
    ([entry("rootfs/" + "x" * 300, "f", b"x")], errors.UnsafeImage,
     "too long"),
])
def test_unsafe_members_are_refused(tmp_path, bad, error, words):
    src = build_unified(tmp_path / "u.tar", [entry("rootfs", "d"), *bad],
                        kind="none")
    out = tmp_path / "out.tar.zst"
    with pytest.raises(error, match=words):
        repack(src, out)
    assert not out.exists()
    assert not (tmp_path / "outside").exists()


def test_limits_apply(tmp_path):
    src = build_unified(tmp_path / "u.tar", small_rootfs(), kind="none")
    with pytest.raises(errors.ImageTooLarge, match="members"):
        repack(src, tmp_path / "a.tar.zst", max_members=5)
    with pytest.raises(errors.ImageTooLarge, match="bytes"):
        repack(src, tmp_path / "b.tar.zst", max_bytes=10)


@pytest.mark.parametrize("metadata,words", [
    ({"creation_date": 1700000000}, "no architecture"),
    ({"architecture": "", "creation_date": 1}, "no architecture"),
    ({"architecture": "x86_64"}, "no creation_date"),
    ({"architecture": "x86_64", "creation_date": "yesterday"},
     "creation_date 'yesterday'"),
    ({"architecture": "x86_64", "creation_date": 0}, "creation_date '0'"),
    ("- just\n- a list\n", "not a mapping"),
    ("architecture: [x86_64\n", "not valid YAML"),
    ("a: &a [x, x]\nb: [*a, *a]\narchitecture: x86_64\n"
     "creation_date: 1\n", "aliases are not allowed"),
    ({**METADATA, "properties": {"os": {"nested": "map"}}},
     "properties.os is not a string"),
    ({**METADATA, "properties": ["os"]}, "properties is not a mapping"),
    ({**METADATA, "templates": {"/etc/x": {"template": "missing.tpl"}}},
     "names the template 'missing.tpl', which templates/ lacks"),
    ({**METADATA, "templates": {"etc/x": {"template": "hosts.tpl"}}},
     "not an absolute path"),
    ({**METADATA, "templates": {"/etc/x": {"template": "hosts.tpl",
                                           "when": ["reboot"]}}},
     "when is not a list of create, copy, start, rename"),
])
def test_bad_metadata_is_refused(tmp_path, metadata, words):
    src = build_unified(tmp_path / "u.tar", small_rootfs(),
                        metadata=metadata, kind="none")
    out = tmp_path / "out.tar.zst"
    with pytest.raises(errors.InvalidImage, match=words):
        repack(src, out)
    assert not out.exists()


def test_bad_metadata_first_fails_before_the_rootfs_is_read(tmp_path):
    # metadata.yaml without architecture, then a broken header: the error
    # is about the metadata, so rootfs/ was never reached.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(*yaml_entry({"creation_date": 1}))
        end = tar.offset
    src = tmp_path / "u.tar"
    src.write_bytes(buf.getvalue()[:end] + b"\xff" * 512)
    with pytest.raises(errors.InvalidImage, match="no architecture"):
        repack(src, tmp_path / "out.tar.zst")


def test_missing_metadata_or_rootfs_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in small_rootfs():
            tar.addfile(info, data)
    src = tmp_path / "nometa.tar"
    src.write_bytes(buf.getvalue())
    with pytest.raises(errors.InvalidImage, match="no metadata.yaml"):
        repack(src, tmp_path / "a.tar.zst")
    empty = build_unified(tmp_path / "empty.tar", [entry("rootfs", "d")],
                          kind="none")
    with pytest.raises(errors.InvalidImage, match="rootfs/ is missing or "
                       "empty"):
        repack(empty, tmp_path / "b.tar.zst")


def test_duplicate_metadata_is_refused(tmp_path):
    src = build_unified(tmp_path / "u.tar", [
        entry("rootfs", "d"), entry("rootfs/x", "f", b"x"),
        yaml_entry(METADATA, "./metadata.yaml")], kind="none")
    with pytest.raises(errors.InvalidImage, match="appears twice"):
        repack(src, tmp_path / "out.tar.zst")


def test_metadata_and_templates_are_bounded(tmp_path):
    huge = {**METADATA, "properties": {"description": "x" * 4000,
                                       **{f"k{i}": "v" * 4000
                                          for i in range(300)}}}
    src = build_unified(tmp_path / "u.tar", small_rootfs(), metadata=huge,
                        kind="none")
    with pytest.raises(errors.ImageTooLarge, match="'metadata.yaml'"):
        repack(src, tmp_path / "a.tar.zst")
    big = {f"t{i}.tpl": b"x" * 300_000 for i in range(4)}
    src = build_unified(tmp_path / "v.tar", small_rootfs(), templates=big,
                        kind="none")
    with pytest.raises(errors.ImageTooLarge, match="templates/t3.tpl"):
        repack(src, tmp_path / "b.tar.zst")


def test_non_utf8_template_is_refused(tmp_path):
    src = build_unified(tmp_path / "u.tar", small_rootfs(), templates={
        "hostname.tpl": b"\xff\xfe", "hosts.tpl": b"x"}, kind="none")
    with pytest.raises(errors.InvalidImage, match="not UTF-8"):
        repack(src, tmp_path / "out.tar.zst")
