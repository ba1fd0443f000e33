"""``file push`` (files, or trees with ``-r``), ``file pull``, ``file
mkdir`` and ``file delete`` through ``/1.0/instances/NAME/files?path=...``
with LXD's ``X-LXD-*`` headers for owner, mode, type and write mode."""

from __future__ import annotations

import os
import posixpath
import stat
import sys
from pathlib import Path

from nova_lxd.cli import address, progress
from nova_lxd.cli.client import Client, q
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import CliError


def register(sub) -> None:
    f = sub.add_parser("file", help="push, pull, make or delete files")
    fsub = f.add_subparsers(dest="file_cmd", metavar="COMMAND",
                            required=True)
    p = fsub.add_parser("push", help="copy local files into an instance")
    p.add_argument("sources", nargs="+", metavar="SRC")
    p.add_argument("target", metavar="[REMOTE:]NAME/PATH")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="push directories with what they hold, into the "
                        "target directory")
    p.add_argument("--uid", type=int, help="owner in the instance")
    p.add_argument("--gid", type=int, help="group in the instance")
    p.add_argument("--mode", type=parse_mode,
                   help="octal mode (default: the source's)")
    p.set_defaults(func=push)
    p = fsub.add_parser("pull", help="copy a file out of an instance")
    p.add_argument("source", metavar="[REMOTE:]NAME/PATH")
    p.add_argument("dest", metavar="DEST", help="file, directory or -")
    p.set_defaults(func=pull)
    p = fsub.add_parser("mkdir", help="make directories in an instance "
                                      "(an existing one is fine)")
    p.add_argument("targets", nargs="+", metavar="[REMOTE:]NAME/PATH")
    p.add_argument("-p", "--parents", action="store_true",
                   help="make missing parent directories too (0755)")
    p.add_argument("--uid", type=int, help="owner in the instance")
    p.add_argument("--gid", type=int, help="group in the instance")
    p.add_argument("--mode", type=parse_mode, help="octal mode "
                                                   "(default: 0750)")
    p.set_defaults(func=mkdir)
    p = fsub.add_parser("delete", help="delete files, symlinks or empty "
                                       "directories in an instance")
    p.add_argument("targets", nargs="+", metavar="[REMOTE:]NAME/PATH")
    p.set_defaults(func=delete)


def parse_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise CliError(f"{text!r} is not an octal mode")
    if not 0 <= mode <= 0o7777:
        raise CliError(f"{text!r} is not a file mode")
    return mode


def push_headers(mode: int | None, uid: int | None, gid: int | None,
                 kind: str = "file") -> dict:
    headers = {"X-LXD-type": kind, "Content-Type": "application/octet-stream"}
    if kind == "file":
        headers["X-LXD-write"] = "overwrite"
    if mode is not None:
        headers["X-LXD-mode"] = f"{mode:04o}"
    if uid is not None:
        headers["X-LXD-uid"] = str(uid)
    if gid is not None:
        headers["X-LXD-gid"] = str(gid)
    return headers


def _files_url(name: str) -> str:
    return f"/1.0/instances/{q(name)}/files"


def push(ctx: Context, args) -> int:
    target, path = address.parse_file(ctx.config, args.target)
    client = ctx.client(target.remote)
    many = len(args.sources) > 1
    if args.recursive:
        for src in args.sources:
            push_tree(ctx, client, target.name, Path(src), path, args)
        return 0
    if many and not path.endswith("/"):
        raise CliError("with several sources, the target must be a "
                       "directory ending in '/'")
    for src in args.sources:
        local = Path(src)
        dest = path + local.name if path.endswith("/") else path
        push_file(ctx, client, target.name, local, dest, args)
    return 0


def push_file(ctx: Context, client: Client, name: str, local: Path,
              dest: str, args) -> None:
    """One regular file, with the source's mode unless --mode."""
    try:
        st = local.stat()
        f = open(local, "rb")
    except OSError as err:
        raise CliError(f"cannot read {local}: {err.strerror}")
    if not stat.S_ISREG(st.st_mode):
        f.close()
        raise CliError(f"{local} is not a regular file")
    mode = args.mode if args.mode is not None else st.st_mode & 0o7777
    reader = progress.UploadReader(f, local.name, ctx.show_progress())
    try:
        client.raw("POST", _files_url(name), params={"path": dest},
                   data=reader,
                   headers=push_headers(mode, args.uid, args.gid))
    finally:
        reader.close()
        f.close()


def push_tree(ctx: Context, client: Client, name: str, src: Path,
              dest_dir: str, args) -> None:
    """``src`` and all it holds into ``dest_dir`` (as ``lxc file push
    -r``): directories first, top down, then their files; symlinks are
    pushed as symlinks, never followed; modes are the sources'."""
    if src.is_symlink() or not src.is_dir():
        raise CliError(f"{src} is not a directory (-r pushes directories)")
    root = posixpath.join(dest_dir, src.resolve().name)
    failed: list[OSError] = []
    for here, dirs, files in os.walk(src, onerror=failed.append):
        rel = Path(here).relative_to(src).parts
        remote = posixpath.join(root, *rel)
        mode = Path(here).stat().st_mode & 0o7777
        client.raw("POST", _files_url(name), params={"path": remote},
                   headers=push_headers(mode, args.uid, args.gid,
                                        "directory"))
        for entry in sorted(files) + sorted(d for d in dirs
                                            if Path(here, d).is_symlink()):
            local = Path(here, entry)
            dest = posixpath.join(remote, entry)
            if local.is_symlink():
                client.raw("POST", _files_url(name), params={"path": dest},
                           data=os.readlink(local).encode(),
                           headers=push_headers(None, args.uid, args.gid,
                                                "symlink"))
            elif local.is_file():
                push_file(ctx, client, name, local, dest, args)
            else:
                print(f"skipped {local}: not a file, directory or symlink",
                      file=sys.stderr)
    if failed:
        raise CliError(f"cannot read {failed[0].filename}: "
                       f"{failed[0].strerror}")


def mkdir(ctx: Context, args) -> int:
    for text in args.targets:
        target, path = address.parse_file(ctx.config, text)
        client = ctx.client(target.remote)
        parts = [p for p in path.split("/") if p]
        if args.parents:
            for i in range(1, len(parts)):
                client.raw("POST", _files_url(target.name),
                           params={"path": "/" + "/".join(parts[:i])},
                           headers=push_headers(0o755, None, None,
                                                "directory"))
        client.raw("POST", _files_url(target.name), params={"path": path},
                   headers=push_headers(args.mode, args.uid, args.gid,
                                        "directory"))
    return 0


def delete(ctx: Context, args) -> int:
    for text in args.targets:
        target, path = address.parse_file(ctx.config, text)
        ctx.client(target.remote).raw("DELETE", _files_url(target.name),
                                      params={"path": path})
    return 0


def pull(ctx: Context, args) -> int:
    target, path = address.parse_file(ctx.config, args.source)
    client = ctx.client(target.remote)
    resp = client.raw("GET", _files_url(target.name),
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
