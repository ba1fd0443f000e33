"""``nova-lxd-image``: prepare container images offline.

    nova-lxd-image convert ubuntu.qcow2 ubuntu-rootfs.tar.zst
    nova-lxd-image convert --disk-format vmdk appliance.vmdk rootfs.tar.gz

Turns any input the engine accepts (root tarballs, LXD unified tarballs,
raw/qcow2/vmdk/vdi/vhdx disks with ext4, xfs, btrfs or squashfs) into a
safe rootfs tarball, compressed as DEST's name says, with a progress bar.
Exit status 0 only when DEST was written.
"""

from __future__ import annotations

import argparse
import logging as std_logging
import sys
import time
import traceback
from pathlib import Path

from oslo_config import cfg
from oslo_log import log as logging
from tqdm import tqdm

from nova_lxd.engine import errors
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.images.pipeline import ImageImporter
from nova_lxd.engine.images.progress import LogProgress, tee

DISK_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx", "root-tar")
CONTAINER_FORMATS = ("bare", "compressed")


class ProgressBar:
    """One tqdm bar per stage, on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=100, desc=f"{stage:>8}", unit="%",
                            file=sys.stderr, leave=True,
                            bar_format="{desc} {bar} {n:.0f}%")
        assert self.bar is not None
        self.bar.update(max(0.0, fraction * 100 - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nova-lxd-image",
        description="Prepare nova-lxd container images offline.")
    parser.add_argument("--debug", action="store_true",
                        help="log every step and show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser(
        "convert", help="turn an image into a rootfs tarball",
        description="Turn SOURCE (root tarball, LXD unified tarball or "
                    "disk image) into a rootfs tarball DEST, compressed "
                    "as its name says (.tar, .tar.gz, .tar.xz, .tar.bz2, "
                    ".tar.zst).")
    convert.add_argument("source", type=Path)
    convert.add_argument("dest", type=Path)
    convert.add_argument("--disk-format", choices=DISK_FORMATS,
                         help="what Glance will be told (checked against "
                              "the content)")
    convert.add_argument("--container-format", choices=CONTAINER_FORMATS)
    convert.add_argument("--max-virtual-size", type=int,
                         default=EngineConfig.max_virtual_size,
                         help="refuse disks declaring more bytes "
                              "(default %(default)s)")
    convert.add_argument("--max-unpacked-size", type=int,
                         default=EngineConfig.max_unpacked_size,
                         help="refuse images expanding to more bytes "
                              "(default %(default)s)")
    convert.add_argument("--quiet", "-q", action="store_true",
                         help="no progress bar")
    convert.add_argument("--force", action="store_true",
                         help="overwrite DEST if it exists")
    return parser


def convert(args: argparse.Namespace) -> int:
    if args.dest.exists() and not args.force:
        raise errors.InvalidInput(
            f"{args.dest} exists; remove it or pass --force.")
    config = EngineConfig(max_virtual_size=args.max_virtual_size,
                          max_unpacked_size=args.max_unpacked_size)
    importer = ImageImporter(store=None, config=config)
    bar = ProgressBar(enabled=not args.quiet)
    started = time.monotonic()
    try:
        result = importer.convert_file(
            args.source, args.dest, disk_format=args.disk_format,
            container_format=args.container_format,
            progress=tee(bar, LogProgress(args.source.name)
                         if args.debug else None))
    finally:
        bar.close()
    elapsed = time.monotonic() - started
    size = args.dest.stat().st_size
    print(f"{args.dest}: rootfs tarball, {size / 1e6:.1f} MB, "
          f"in {elapsed:.1f} s")
    if result.detail:
        print(f"  {result.detail}")
    for key in ("os_distro", "os_version", "os_name", "architecture"):
        if result.properties.get(key):
            print(f"  {key}: {result.properties[key]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    conf([], project="nova-lxd")
    conf.set_override("debug", args.debug)
    logging.setup(conf, "nova-lxd-image")
    if not args.debug:  # the progress bar says it; logs only on problems
        std_logging.getLogger("nova_lxd").setLevel(std_logging.WARNING)
        std_logging.getLogger("oslo_utils").setLevel(std_logging.ERROR)
    try:
        return convert(args)
    except errors.EngineError as exc:
        print(f"nova-lxd-image: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nova-lxd-image: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback to users
        if args.debug:
            traceback.print_exc()
        print(f"nova-lxd-image: unexpected error: {exc} (run with --debug "
              f"for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
