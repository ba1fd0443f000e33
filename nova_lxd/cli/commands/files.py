"""``file push`` and ``file pull``: one file each way through
``/1.0/instances/NAME/files?path=...`` with LXD's ``X-LXD-*`` headers
for owner, mode, type and write mode."""

from __future__ import annotations

import os
import posixpath
import stat
import sys
from pathlib import Path

from nova_lxd.cli import address, progress
from nova_lxd.cli.client import q
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import CliError


def register(sub) -> None:
    f = sub.add_parser("file", help="push or pull files")
    fsub = f.add_subparsers(dest="file_cmd", metavar="COMMAND",
                            required=True)
    p = fsub.add_parser("push", help="copy local files into an instance")
    p.add_argument("sources", nargs="+", metavar="SRC")
    p.add_argument("target", metavar="[REMOTE:]NAME/PATH")
    p.add_argument("--uid", type=int, help="owner in the instance")
    p.add_argument("--gid", type=int, help="group in the instance")
    p.add_argument("--mode", type=parse_mode,
                   help="octal mode (default: the source's)")
    p.set_defaults(func=push)
    p = fsub.add_parser("pull", help="copy a file out of an instance")
    p.add_argument("source", metavar="[REMOTE:]NAME/PATH")
    p.add_argument("dest", metavar="DEST", help="file, directory or -")
    p.set_defaults(func=pull)


def parse_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise CliError(f"{text!r} is not an octal mode")
    if not 0 <= mode <= 0o7777:
        raise CliError(f"{text!r} is not a file mode")
    return mode


def push_headers(mode: int, uid: int | None, gid: int | None) -> dict:
    headers = {"X-LXD-type": "file", "X-LXD-write": "overwrite",
               "X-LXD-mode": f"{mode:04o}",
               "Content-Type": "application/octet-stream"}
    if uid is not None:
        headers["X-LXD-uid"] = str(uid)
    if gid is not None:
        headers["X-LXD-gid"] = str(gid)
    return headers


def push(ctx: Context, args) -> int:
    target, path = address.parse_file(ctx.config, args.target)
    client = ctx.client(target.remote)
    many = len(args.sources) > 1
    if many and not path.endswith("/"):
        raise CliError("with several sources, the target must be a "
                       "directory ending in '/'")
    for src in args.sources:
        local = Path(src)
        try:
            st = local.stat()
            f = open(local, "rb")
        except OSError as err:
            raise CliError(f"cannot read {src}: {err.strerror}")
        if not stat.S_ISREG(st.st_mode):
            f.close()
            raise CliError(f"{src} is not a regular file")
        dest = path + local.name if path.endswith("/") else path
        mode = args.mode if args.mode is not None else st.st_mode & 0o7777
        reader = progress.UploadReader(f, local.name, ctx.show_progress())
        try:
            client.raw("POST", f"/1.0/instances/{q(target.name)}/files",
                       params={"path": dest}, data=reader,
                       headers=push_headers(mode, args.uid, args.gid))
        finally:
            reader.close()
            f.close()
    return 0


def pull(ctx: Context, args) -> int:
    target, path = address.parse_file(ctx.config, args.source)
    client = ctx.client(target.remote)
    resp = client.raw("GET", f"/1.0/instances/{q(target.name)}/files",
                      params={"path": path}, stream=True)
    kind = resp.headers.get("X-LXD-type", "file")
    if kind != "file":
        resp.close()
        raise CliError(f"{target.name}{path} is a {kind}, not a file")
    if args.dest == "-":
        for chunk in resp.iter_content(1 << 16):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return 0
    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / posixpath.basename(path)
    tmp = dest.with_name(f".{dest.name}.nlxc-part")
    try:
        with open(tmp, "wb") as out:
            for chunk in resp.iter_content(1 << 16):
                out.write(chunk)
        mode = resp.headers.get("X-LXD-mode")
        if mode:
            os.chmod(tmp, int(mode, 8) & 0o7777)
        os.replace(tmp, dest)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CliError(f"cannot write {dest}: {err.strerror}")
    return 0
