"""The disk-image checks that need no root: qemu-img header rules, progress
parsing, confinement, and path resolution inside a mounted root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.images import confine, mount, qemu

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                    reason="qemu-utils missing")


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@needs_qemu_img
@pytest.mark.parametrize("fmt", ["qcow2", "vmdk", "vdi", "vhdx"])
def test_formats_are_sniffed_and_checked(tmp_path, fmt):
    image = tmp_path / f"d.{fmt}"
    qemu_img("create", "-f", fmt, str(image), "64M")
    assert qemu.sniff_format(image) == fmt
    found = qemu.info(image, fmt, max_virtual_size=1 << 30)
    assert (found.format, found.virtual_size) == (fmt, 64 << 20)
    with pytest.raises(errors.InvalidImage, match=f"content is a {fmt}"):
        qemu.info(image, "raw")


@needs_qemu_img
def test_backing_file_refused_before_qemu_img_runs(tmp_path):
    image = tmp_path / "b.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw",
             str(image), "64M")
    with pytest.raises(errors.UnsafeImage, match="backing file"):
        qemu.check_header(image, "qcow2")


@needs_qemu_img
def test_external_data_file_refused(tmp_path):
    image = tmp_path / "d.qcow2"
    qemu_img("create", "-f", "qcow2", "-o",
             f"data_file={tmp_path / 'data'},data_file_raw=on", str(image),
             "64M")
    with pytest.raises(errors.UnsafeImage, match="data file"):
        qemu.check_header(image, "qcow2")


def test_vmdk_descriptor_refused(tmp_path):
    image = tmp_path / "d.vmdk"
    image.write_text('# Disk DescriptorFile\nversion=1\ncreateType='
                     '"monolithicFlat"\nRW 2048 FLAT "/etc/shadow" 0\n')
    assert qemu.sniff_format(image) == "vmdk"
    with pytest.raises(errors.UnsafeImage, match="descriptor"):
        qemu.check_header(image, "vmdk")


@needs_qemu_img
def test_multi_extent_vmdk_refused(tmp_path):
    image = tmp_path / "split.vmdk"
    qemu_img("create", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse",
             str(image), "64M")
    with pytest.raises(errors.UnsafeImage):
        qemu.info(image, "vmdk")


@needs_qemu_img
def test_virtual_size_bound(tmp_path):
    image = tmp_path / "huge.qcow2"
    qemu_img("create", "-f", "qcow2", str(image), "16T")
    with pytest.raises(errors.ImageTooLarge, match="virtual size"):
        qemu.info(image, "qcow2", max_virtual_size=100 << 30)


def test_unsupported_format(tmp_path):
    (tmp_path / "x").write_bytes(b"\0" * 4096)
    with pytest.raises(errors.InvalidImage, match="not supported"):
        qemu.check_header(tmp_path / "x", "vpc")


def _progress_of(*writes: bytes) -> list[float]:
    r, w = os.pipe()
    for data in writes:
        os.write(w, data)
    os.close(w)
    seen: list[float] = []
    with os.fdopen(r, "rb") as stream:
        qemu._follow_progress(stream, seen.append)
    return seen


def test_progress_is_parsed_from_carriage_returns():
    """The latest complete ``(NN.NN/100%)`` of each read counts."""
    assert _progress_of(b"    (0.00/100%)\r    (12.50/100%)\r    (99.9"
                        ) == [0.125]
    assert _progress_of(b"    (0.00/100%)\r    (12.50/100%)\r    (99.9",
                        b"0/100%)\r    (100.00/100%)\r\n") == [1.0]
    assert _progress_of(b"garbage\r\n") == []


def test_confined_tool_dies_with_its_caller(tmp_path):
    """setpriv --pdeathsig: the tool goes when the caller is SIGKILLed."""
    marker = tmp_path / "pid"
    script = (
        "import subprocess, sys\n"
        "from nova_lxd.engine.images import confine\n"
        f"p = subprocess.Popen(confine.command(['sleep', '300'], "
        f"cpu_seconds=5, memory=1 << 28))\n"
        f"open({str(marker)!r}, 'w').write(str(p.pid))\n"
        "p.wait()\n")
    caller = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 10
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pid = int(marker.read_text())
    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
        assert time.monotonic() < deadline, "the confined tool outlived us"
        time.sleep(0.02)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][1]
    except (OSError, IndexError):
        return "Z"


def test_confine_command_limits():
    argv = confine.command(["qemu-img", "info"], cpu_seconds=30,
                           memory=1 << 30, file_size=4096)
    assert argv[:4] == ["setpriv", "--pdeathsig", "KILL", "--"]
    assert "--cpu=30" in argv and f"--as={1 << 30}" in argv
    assert "--fsize=4096" in argv and argv[-2:] == ["qemu-img", "info"]


def test_cpu_limit_is_a_typed_error():
    with pytest.raises(errors.InvalidImage, match="CPU time"):
        confine.run([sys.executable, "-c", "while True: pass"],
                    source="spin.img", cpu_seconds=1, memory=1 << 30)


def _tree(root: Path) -> Path:
    for d in ("bin", "sbin", "etc", "usr/lib", "lib"):
        (root / d).mkdir(parents=True)
    (root / "bin/busybox").write_bytes(b"\x7fELF")
    (root / "bin/busybox").chmod(0o755)
    (root / "sbin/init").symlink_to("/bin/busybox")
    (root / "usr/lib/os-release").write_text("ID=test\n")
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    (root / "lib/escape").symlink_to("../../../../../etc")
    (root / "etc/passwd-link").symlink_to("/etc/passwd")
    (root / "loop").symlink_to("loop")
    return root


def test_resolve_in_root_never_leaves_the_root(tmp_path):
    root = _tree(tmp_path / "root")
    resolve = mount.resolve_in_root
    assert resolve(root, "sbin/init") == "bin/busybox"
    assert resolve(root, "etc/os-release") == "usr/lib/os-release"
    # ".." stops at the root: lib/escape is the root's own etc.
    assert resolve(root, "lib/escape/os-release") == "usr/lib/os-release"
    # An absolute link means the root's /etc/passwd, which is missing.
    assert resolve(root, "etc/passwd-link") is None
    assert resolve(root, "loop") is None
    assert resolve(root, "bin/busybox/x") is None


def test_find_root(tmp_path):
    found = mount.find_root(_tree(tmp_path / "root"))
    assert found["subdir"] == ""
    assert found["init"] == ("sbin/init", "bin/busybox")
    assert found["os_release"] == ("etc/os-release", "usr/lib/os-release")
    assert mount.holds_root(found) == (
        "holds an init (sbin/init -> bin/busybox) and etc/os-release")


def test_find_root_in_a_subvolume_directory(tmp_path):
    _tree(tmp_path / "fs" / "@")
    found = mount.find_root(tmp_path / "fs")
    assert found["subdir"] == "@" and found["init"]


def test_find_root_without_init(tmp_path):
    (tmp_path / "data").mkdir()
    found = mount.find_root(tmp_path / "data")
    assert not found["init"] and not found["os_release"]
    assert mount.holds_root(found) == "holds no init and no os-release"
