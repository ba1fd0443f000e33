"""Boots that must fail, each with a clear message and no leftovers."""

from __future__ import annotations

import subprocess

import pytest

from nova_lxd.testing.busybox import build_busybox_rootfs

from .conftest import engine_names


@pytest.fixture
def scratch_images(cloud, tmp_path):
    """Upload throwaway images; deleted afterwards."""
    created = []

    def upload(name: str, data_path, disk_format: str) -> str:
        image = cloud.json("image", "create", cloud.name(name),
                           "--disk-format", disk_format,
                           "--container-format", "bare",
                           "--file", str(data_path))
        created.append(image["id"])
        return image["id"]

    yield upload
    if created:
        cloud.run("image", "delete", *created, check=False)


def _images(observer) -> set[str]:
    return {image.fingerprint for image in observer.list_images()}


def _scratch(observer) -> list[str]:
    tmp = observer.config.images_dir / ".tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def test_unconvertible_image(cloud, observer, scratch_images, tmp_path):
    junk = tmp_path / "junk.raw"
    junk.write_bytes(b"\x7fELF" + b"\0" * 8192)
    image = scratch_images("junk", junk, "raw")
    before, images = engine_names(observer), _images(observer)
    name = cloud.name("junk")
    cloud.create(name, image, "c1.tiny", wait=False)
    server = cloud.wait(name, "ERROR")
    fault = server["fault"]["message"]
    assert "is unacceptable" in fault and "ELF executable" in fault, fault
    assert engine_names(observer) == before
    assert _images(observer) == images
    assert _scratch(observer) == []
    cloud.delete(name)
    # nova keeps 255 characters of a fault: a host path could push the
    # reason out, and users should not see host paths.
    assert "/var/lib/" not in fault, fault


def test_image_too_large_for_the_flavor(cloud, observer, scratch_images,
                                        tmp_path):
    """A valid disk image (busybox on a 1.5 GiB ext4, sparse) booted with
    a flavor of 1 GB root disk."""
    tree = build_busybox_rootfs(tmp_path / "tree")
    fs = tmp_path / "root.ext4"
    with open(fs, "wb") as f:
        f.truncate(1536 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(fs)],
                   check=True)
    big = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O",
                    "qcow2", str(fs), str(big)], check=True)
    image = scratch_images("big", big, "qcow2")
    before = engine_names(observer)
    name = cloud.name("big")
    proc = cloud.run("server", "create", "--image", image, "--flavor",
                     "c1.tiny", "--nic", "none", name, check=False)
    if proc.returncode != 0:  # nova's API compares the virtual size
        assert "disk is too small" in proc.stderr, proc.stderr
    else:
        server = cloud.wait(name, {"ERROR", "ACTIVE"})
        cloud.delete(name)
        assert engine_names(observer) == before
        assert server["status"] == "ERROR", "booted on a too small disk"
        assert "too" in server["fault"]["message"], server["fault"]
    assert not [s for s in cloud.servers() if s["Name"] == name]
    assert engine_names(observer) == before


def test_flavor_the_host_cannot_fit(cloud, observer):
    flavor = cloud.name("huge")
    # Disk has no quota: the scheduler, not the quota check, says no.
    cloud.run("flavor", "create", flavor, "--vcpus", "1", "--ram", "128",
              "--disk", "1000000")
    try:
        before = engine_names(observer)
        name = cloud.name("huge")
        cloud.create(name, "busybox", flavor, wait=False)
        server = cloud.wait(name, "ERROR")
        assert "No valid host" in server["fault"]["message"]
        assert engine_names(observer) == before
        cloud.delete(name)
    finally:
        cloud.run("flavor", "delete", flavor, check=False)
