"""Build the two Glance images of the one-host cloud and the DevStack
plugin, once: ``build_images.py DIR`` writes (if missing)

``DIR/busybox-rootfs.tar.gz``
    a busybox-static root tarball (about 1 MB; uploaded as raw/bare:
    Glance has no root-file-system format);
``DIR/debian-<suite>-minbase.qcow2``
    a Debian minbase (debootstrap, with systemd-sysv) on an ext4 partition
    of a GPT disk, as qcow2 (uploaded as qcow2/bare).

The debootstrap tree is cached by :mod:`nova_lxd.testing.debootstrap`
(``/var/cache/nova-lxd-tests``, shared with the functional tests). Prints
one line per image: ``name<TAB>path<TAB>disk_format``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from nova_lxd.testing import debootstrap, disks
from nova_lxd.testing.busybox import build_busybox_tarball


def busybox(dest_dir: Path) -> Path:
    dest = dest_dir / "busybox-rootfs.tar.gz"
    if not dest.exists():
        build_busybox_tarball(dest)
    return dest


def debian(dest_dir: Path, suite: str) -> Path:
    dest = dest_dir / f"debian-{suite}-minbase.qcow2"
    if dest.exists():
        return dest
    tree = debootstrap.minbase_rootfs(suite)
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        work = Path(tmp)
        fs = disks.make_filesystem(tree, work / "root.ext4", "ext4")
        raw = disks.make_partitioned_disk(fs, work / "disk.raw", "gpt")
        fs.unlink()
        partial = work / dest.name
        disks.convert(raw, partial, "qcow2")
        os.replace(partial, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest_dir", type=Path)
    parser.add_argument("--suite", default=debootstrap.host_suite())
    args = parser.parse_args(argv)
    args.dest_dir.mkdir(parents=True, exist_ok=True)
    print(f"busybox\t{busybox(args.dest_dir)}\traw")
    print(f"debian-{args.suite}\t{debian(args.dest_dir, args.suite)}"
          "\tqcow2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
