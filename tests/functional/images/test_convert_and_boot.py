"""Every supported input becomes an image that boots as a container."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from nova_lxd.testing import disks
from nova_lxd.testing.busybox import (
    build_busybox_rootfs,
    build_busybox_tarball,
)
from nova_lxd.testing.debootstrap import minbase_rootfs


@pytest.fixture(scope="module")
def busybox_tree(tmp_path_factory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("bb") / "rootfs")


@pytest.fixture(scope="module")
def fs_images(busybox_tree, tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("fs")
    return {fs: disks.make_filesystem(busybox_tree, work / f"root.{fs}", fs)
            for fs in ("ext4", "xfs", "btrfs", "squashfs")}


def boots_with_os_release(engine, image_ref, expected: str) -> None:
    name = "boot-" + str(abs(hash(image_ref)) % 100000)
    engine.launch(name, image_ref)
    try:
        result = engine.execute(name, ["cat", "/etc/os-release"])
        assert result.exit_code == 0, result.stderr
        assert expected in result.stdout.decode()
    finally:
        engine.delete(name, force=True)


@pytest.mark.parametrize("compression", ["none", "gz", "xz", "bz2", "zst"])
def test_root_tarballs(engine, tmp_path, compression):
    suffix = {"none": ".tar"}.get(compression, f".tar.{compression}")
    tarball = build_busybox_tarball(tmp_path / f"bb{suffix}", compression)
    image = engine.import_image(tarball, disk_format="raw",
                                container_format="bare")
    assert image.properties["os_distro"] == "busybox"
    assert image.properties["architecture"] == "x86_64"
    boots_with_os_release(engine, image.fingerprint, "ID=busybox")


def test_unified_tarball(engine, tmp_path, busybox_tree):
    path = tmp_path / "unified.tar.gz"
    metadata = {"architecture": "x86_64", "creation_date": 1700000000,
                "properties": {"os": "busybox", "release": "1.35",
                               "description": "busybox unified"},
                "templates": {"/etc/hostname": {
                    "when": ["create"], "template": "hostname.tpl"}}}
    with tarfile.open(path, "w:gz") as tar:
        data = yaml.safe_dump(metadata).encode()
        info = tarfile.TarInfo("metadata.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tpl = b"{{ container.name }}\n"
        info = tarfile.TarInfo("templates/hostname.tpl")
        info.size = len(tpl)
        tar.addfile(info, io.BytesIO(tpl))
        tar.add(busybox_tree, arcname="rootfs")
    image = engine.import_image(path)
    assert image.properties["architecture"] == "x86_64"
    assert image.properties.get("os") == "busybox"
    assert image.properties.get("release") == "1.35"
    boots_with_os_release(engine, image.fingerprint, "ID=busybox")


@pytest.mark.parametrize("fs", ["ext4", "xfs", "btrfs", "squashfs"])
def test_whole_filesystem_images(engine, fs_images, fs):
    image = engine.import_image(fs_images[fs], disk_format="raw")
    assert image.properties["root_filesystem"] == fs
    boots_with_os_release(engine, image.fingerprint, "ID=busybox")


@pytest.mark.parametrize("table,filler,fs,fmt", [
    ("gpt", "swap", "ext4", "qcow2"),
    ("dos", "vfat", "ext4", "vmdk"),
    ("gpt", "vfat", "xfs", "vdi"),
    ("dos", "swap", "btrfs", "vhdx"),
    ("gpt", "swap", "squashfs", "qcow2"),
    ("dos", "vfat", "xfs", "raw"),
])
def test_partitioned_disks(engine, fs_images, tmp_path, table, filler, fs,
                           fmt):
    raw = disks.make_partitioned_disk(fs_images[fs], tmp_path / "d.raw",
                                      table, filler=filler)
    source = disks.convert(raw, tmp_path / f"disk.{fmt}", fmt)
    image = engine.import_image(source, disk_format=fmt)
    assert image.properties["root_filesystem"] == fs
    assert "2" in image.properties["root_partition"]
    boots_with_os_release(engine, image.fingerprint, "ID=busybox")


def test_same_glance_image_is_converted_once(engine, fs_images, tmp_path):
    raw = disks.make_partitioned_disk(fs_images["ext4"], tmp_path / "d.raw")
    qcow2 = disks.convert(raw, tmp_path / "d.qcow2", "qcow2")
    origin = {"glance_id": "5f0c6d8e-0000-4000-8000-000000000001",
              "checksum": "abc123"}
    first = engine.import_image(qcow2, disk_format="qcow2", origin=origin)
    started = time.monotonic()
    again = engine.import_image(qcow2, disk_format="qcow2", origin=origin,
                                aliases=("again",))
    assert again.fingerprint == first.fingerprint
    assert "again" in again.aliases
    assert time.monotonic() - started < 0.5
    assert len(engine.list_images()) == 1


def test_debian_minbase_qcow2_boots(engine, tmp_path):
    fs = disks.make_filesystem(minbase_rootfs(), tmp_path / "root.ext4",
                               "ext4")
    raw = disks.make_partitioned_disk(fs, tmp_path / "disk.raw", "gpt")
    fs.unlink()
    qcow2 = disks.convert(raw, tmp_path / "minbase.qcow2", "qcow2")
    raw.unlink()
    image = engine.import_image(qcow2, disk_format="qcow2",
                                container_format="bare")
    assert image.properties["os_distro"] == "debian"
    assert image.properties["architecture"] == "x86_64"
    boots_with_os_release(engine, image.fingerprint, "ID=debian")


@pytest.fixture(scope="module")
def minbase_work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("minbase")


def _minbase_tarball(work: Path) -> Path:
    out = work / "minbase.tar"
    with tarfile.open(out, "w") as tar:
        tar.add(minbase_rootfs(), arcname=".")
    return out


def _minbase_unified(work: Path) -> Path:
    out = work / "minbase-unified.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        data = yaml.safe_dump({"architecture": "x86_64",
                               "creation_date": 1700000000,
                               "properties": {"os": "debian",
                                              "release": "bookworm"}}
                              ).encode()
        info = tarfile.TarInfo("metadata.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(minbase_rootfs(), arcname="rootfs")
    return out


def _minbase_disk(work: Path, fs: str, table: str, fmt: str) -> Path:
    image = disks.make_filesystem(minbase_rootfs(), work / f"root.{fs}", fs)
    raw = disks.make_partitioned_disk(image, work / "disk.raw", table)
    image.unlink()
    out = disks.convert(raw, work / f"minbase-{fs}.{fmt}", fmt)
    if out != raw:
        raw.unlink()
    return out


@pytest.mark.parametrize("build", [
    pytest.param(_minbase_tarball, id="tar"),
    pytest.param(_minbase_unified, id="unified"),
    pytest.param(lambda w: _minbase_disk(w, "xfs", "dos", "vmdk"),
                 id="mbr-xfs-vmdk"),
    pytest.param(lambda w: _minbase_disk(w, "btrfs", "gpt", "vdi"),
                 id="gpt-btrfs-vdi"),
    pytest.param(lambda w: _minbase_disk(w, "ext4", "dos", "vhdx"),
                 id="mbr-ext4-vhdx"),
])
def test_debian_minbase_in_other_shapes_boots(engine, minbase_work, build):
    source = build(minbase_work)
    try:
        image = engine.import_image(source)
    finally:
        source.unlink()
    assert image.properties["os_distro"] == "debian"
    boots_with_os_release(engine, image.fingerprint, "ID=debian")
