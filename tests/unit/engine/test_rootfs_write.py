"""make_directory, make_symlink, delete_path and appends: changes to a
rootfs never follow a symlink or '..' out of it."""

from __future__ import annotations

import os

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.containers.files import (
    RootfsFile,
    delete_path,
    make_directory,
    make_symlink,
    write_files,
)
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.idmap import Idmap

RECORD = ContainerRecord(name="c1", image="x" * 64)
SHIFTED = RECORD.replace(idmap=Idmap(100000, 200000, 65536),
                         idmapped_mount=False)


@pytest.fixture
def host(tmp_path):
    """A host directory the rootfs' symlinks point at."""
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "keep").write_bytes(b"host only")
    return outside


@pytest.fixture
def rootfs(tmp_path, host):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_bytes(b"c1\n")
    (root / "abs").symlink_to(host)
    (root / "rel").symlink_to("../host")
    (root / "slash").symlink_to("/")
    return root


def test_make_directory_owner_mode_and_existing(rootfs):
    make_directory(SHIFTED, rootfs, "/srv", mode=0o705, uid=1000, gid=5)
    st = os.stat(rootfs / "srv")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (
        0o705, 101000, 200005)
    make_directory(SHIFTED, rootfs, "/srv", mode=0o700)  # kept as it is
    assert os.stat(rootfs / "srv").st_mode & 0o7777 == 0o705
    make_directory(RECORD, rootfs, "/")
    with pytest.raises(errors.PathExists, match="as a file"):
        make_directory(RECORD, rootfs, "/etc/hostname")
    with pytest.raises(errors.PathNotFound):
        make_directory(RECORD, rootfs, "/no/such")


@pytest.mark.parametrize("path", [
    "/abs/x", "/rel/x", "/slash/tmp/x", "/../x", "/etc/../../x", "srv",
    "/etc/hostname/x"])
def test_escapes_refused(rootfs, host, path):
    with pytest.raises(errors.InvalidInput):
        make_directory(RECORD, rootfs, path)
    with pytest.raises(errors.InvalidInput):
        make_symlink(RECORD, rootfs, path, "/etc")
    with pytest.raises((errors.InvalidInput, errors.NotFound)):
        delete_path(RECORD, rootfs, path.replace("/x", "/keep"))
    assert sorted(p.name for p in host.iterdir()) == ["keep"]


def test_symlinks_made_not_followed(rootfs, host):
    make_symlink(SHIFTED, rootfs, "/etc/hosts", "/abs/keep", uid=1)
    assert os.readlink(rootfs / "etc" / "hosts") == "/abs/keep"
    assert os.lstat(rootfs / "etc" / "hosts").st_uid == 100001
    make_symlink(RECORD, rootfs, "/etc/hosts", "/abs/keep")  # same: fine
    with pytest.raises(errors.PathExists):
        make_symlink(RECORD, rootfs, "/etc/hosts", "/other")
    with pytest.raises(errors.InvalidInput):
        make_symlink(RECORD, rootfs, "/etc/x", "")
    # Writing through the new link is refused, not done on the host.
    with pytest.raises(errors.OperationFailed):
        write_files(RECORD, rootfs, [RootfsFile("/etc/hosts", b"x")])
    assert (host / "keep").read_bytes() == b"host only"


def test_delete_file_link_and_empty_directory_only(rootfs, host):
    delete_path(RECORD, rootfs, "/abs")  # the link, not the host's dir
    assert (host / "keep").exists() and not (rootfs / "abs").exists()
    with pytest.raises(errors.DirectoryNotEmpty, match="not empty"):
        delete_path(RECORD, rootfs, "/etc")
    delete_path(RECORD, rootfs, "/etc/hostname")
    delete_path(RECORD, rootfs, "/etc/")
    assert not (rootfs / "etc").exists()
    with pytest.raises(errors.PathNotFound):
        delete_path(RECORD, rootfs, "/etc")
    with pytest.raises(errors.InvalidInput, match="root directory"):
        delete_path(RECORD, rootfs, "/")


def test_append_keeps_owner_and_mode(rootfs):
    write_files(RECORD, rootfs, [RootfsFile("/log", b"a\n", mode=0o600,
                                            uid=7, gid=7, append=True)])
    write_files(RECORD, rootfs, [RootfsFile("/log", b"b\n", mode=0o644,
                                            append=True)])
    st = os.stat(rootfs / "log")
    assert (rootfs / "log").read_bytes() == b"a\nb\n"
    assert (st.st_mode & 0o777, st.st_uid) == (0o600, 7)


def test_fifo_is_not_written(rootfs):
    os.mkfifo(rootfs / "fifo")
    for append in (False, True):
        with pytest.raises(errors.OperationFailed):
            write_files(RECORD, rootfs,
                        [RootfsFile("/fifo", b"x", append=append)])
