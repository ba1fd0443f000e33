"""read_entry: pulls out of a rootfs never follow a symlink or '..'."""

from __future__ import annotations

import os

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.containers.files import container_ids, read_entry
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.idmap import Idmap


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_bytes(b"c1\n")
    os.chmod(root / "etc" / "hostname", 0o640)
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"host only")
    (root / "abs").symlink_to(tmp_path)
    (root / "rel").symlink_to("../..")
    (root / "etc" / "link").symlink_to(secret)
    os.mkfifo(root / "fifo")
    return root


RECORD = ContainerRecord(name="c1", image="x" * 64)


def test_file_directory_symlink(rootfs):
    entry = read_entry(RECORD, rootfs, "/etc/hostname")
    assert (entry.kind, entry.data, entry.mode) == ("file", b"c1\n", 0o640)
    listing = read_entry(RECORD, rootfs, "/etc")
    assert listing.kind == "directory"
    assert listing.entries == ("hostname", "link")
    assert read_entry(RECORD, rootfs, "/").kind == "directory"
    link = read_entry(RECORD, rootfs, "/etc/link")
    assert link.kind == "symlink"
    assert link.data.endswith(b"host-secret")


@pytest.mark.parametrize("path", [
    "/abs/host-secret", "/rel/host-secret", "/../host-secret",
    "etc/hostname", "/etc/hostname/x", "/etc/\0"])
def test_escapes_refused(rootfs, path):
    with pytest.raises((errors.InvalidInput, errors.NotFound)):
        read_entry(RECORD, rootfs, path)


def test_missing_fifo_and_size(rootfs):
    with pytest.raises(errors.NotFound):
        read_entry(RECORD, rootfs, "/nope")
    with pytest.raises(errors.InvalidInput):
        read_entry(RECORD, rootfs, "/fifo")
    with pytest.raises(errors.InvalidInput):
        read_entry(RECORD, rootfs, "/etc/hostname", max_bytes=2)


def test_container_ids_of_a_shifted_rootfs():
    shifted = RECORD.replace(idmap=Idmap(100000, 200000, 65536),
                             idmapped_mount=False)
    assert container_ids(shifted, 101000, 201000) == (1000, 1000)
    assert container_ids(shifted, 0, 0) == (65534, 65534)
    idmapped = RECORD.replace(idmap=Idmap(100000, 200000, 65536))
    assert container_ids(idmapped, 1000, 1000) == (1000, 1000)
