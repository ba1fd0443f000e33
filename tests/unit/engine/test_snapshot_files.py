"""Owner shifts of copied rootfs trees and the export tarball's owners."""

from __future__ import annotations

import os
import struct
import subprocess

import pytest

from nova_lxd.engine.containers import snapshot_files

BASE, NEW, SIZE = 1_000_000, 2_000_000, 65536
# VFS_CAP_REVISION_2 | effective, cap_net_bind_service permitted.
CAPS = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="chown needs root")


def tree(root):
    (root / "dir").mkdir()
    tool = root / "dir" / "tool"
    tool.write_text("x")
    os.symlink("dir/tool", root / "link")
    (root / "host").write_text("kept")
    for path in (root, root / "dir", tool):
        os.lchown(path, BASE, BASE + 5)
    os.lchown(root / "link", BASE + 1000, BASE + 1000)
    os.lchown(root / "host", 7, 7)  # outside the range: left alone
    os.chmod(tool, 0o4755)  # after chown, which clears both
    os.setxattr(tool, "security.capability", CAPS)
    return tool


def test_shift_moves_owners_and_keeps_setid_and_caps(tmp_path):
    tool = tree(tmp_path)
    changed = snapshot_files.shift_tree(
        tmp_path, uid_from=BASE, uid_to=NEW, gid_from=BASE, gid_to=NEW,
        size=SIZE)
    assert changed == 4
    st = tool.stat()
    assert (st.st_uid, st.st_gid) == (NEW, NEW + 5)
    assert st.st_mode & 0o7777 == 0o4755
    assert os.getxattr(tool, "security.capability") == CAPS
    assert os.lstat(tmp_path / "link").st_uid == NEW + 1000
    assert (tmp_path / "host").stat().st_uid == 7
    assert tmp_path.stat().st_uid == NEW


def test_archive_writes_container_ids(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    tree(root)
    out = tmp_path / "out.tar.zst"
    snapshot_files.archive(root, out, label="c/s", uid_base=BASE,
                           gid_base=BASE, size=SIZE)
    listing = subprocess.run(["tar", "--zstd", "-tvf", str(out),
                              "--numeric-owner"], capture_output=True,
                             text=True, check=True).stdout
    owners = {line.split()[5]: line.split()[1]
              for line in listing.splitlines()}
    assert owners["./dir/tool"] == "0/5"
    assert owners["./link"] == "1000/1000"
    assert owners["./"] == "0/5"
