"""``nova-lxd-image convert`` as an operator runs it."""

from __future__ import annotations

import subprocess
import sys
import tarfile

import pytest

from nova_lxd.testing import disks
from nova_lxd.testing.busybox import build_busybox_rootfs


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nova_lxd.cmd.image",
                           *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def qcow2(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    fs = disks.make_filesystem(build_busybox_rootfs(work / "rootfs"),
                               work / "root.ext4", "ext4")
    raw = disks.make_partitioned_disk(fs, work / "disk.raw", "gpt")
    return disks.convert(raw, work / "disk.qcow2", "qcow2")


def test_convert_qcow2_to_gzip_tarball(qcow2, tmp_path):
    dest = tmp_path / "rootfs.tar.gz"
    result = run("convert", str(qcow2), str(dest))
    assert result.returncode == 0, result.stderr
    assert "archive" in result.stderr  # the progress bar
    assert "os_distro: busybox" in result.stdout
    with tarfile.open(dest, "r:gz") as tar:
        names = tar.getnames()
    assert "./sbin/init" in names and "./etc/os-release" in names


def test_bad_input_fails_cleanly(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00not an image" * 100)
    dest = tmp_path / "out.tar.zst"
    result = run("convert", str(junk), str(dest))
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["junk.bin"]


def test_declared_format_mismatch(qcow2, tmp_path):
    result = run("convert", "--disk-format", "vmdk", str(qcow2),
                 str(tmp_path / "out.tar"))
    assert result.returncode == 1
    assert "--disk-format qcow2" in result.stderr


def test_existing_destination_needs_force(qcow2, tmp_path):
    dest = tmp_path / "out.tar.zst"
    dest.write_bytes(b"keep me")
    assert run("convert", str(qcow2), str(dest)).returncode == 1
    assert dest.read_bytes() == b"keep me"
    assert run("convert", "--force", "-q", str(qcow2),
               str(dest)).returncode == 0
    assert dest.read_bytes() != b"keep me"


def test_unknown_suffix(qcow2, tmp_path):
    result = run("convert", str(qcow2), str(tmp_path / "out.zip"))
    assert result.returncode == 1
    assert ".tar.zst" in result.stderr
