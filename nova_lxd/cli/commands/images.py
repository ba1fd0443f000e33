"""``image import/list/delete`` and ``image alias create/delete/list``.

Import sends the tarball as the raw body of ``POST /1.0/images`` with a
Content-Length (a byte progress bar follows the upload), then waits on
the operation while the server unpacks it, then adds the aliases.
"""

from __future__ import annotations

import os

from nova_lxd.cli import address, output, progress
from nova_lxd.cli.client import Client, q
from nova_lxd.cli.commands.instances import say
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import CliError, NotFound


def register(sub) -> None:
    img = sub.add_parser("image", help="images")
    isub = img.add_subparsers(dest="image_cmd", metavar="COMMAND",
                              required=True)
    p = isub.add_parser("import", help="import an image tarball")
    p.add_argument("file")
    p.add_argument("remote", nargs="?", metavar="[REMOTE:]")
    p.add_argument("--alias", action="append", default=[],
                   help="alias for the new image (repeatable)")
    p.add_argument("--public", action="store_true",
                   help="visible to untrusted clients")
    p.set_defaults(func=import_image)
    p = isub.add_parser("list", aliases=["ls"], help="list images")
    p.add_argument("remote", nargs="?", metavar="[REMOTE:]")
    output.add_format(p)
    p.set_defaults(func=list_images)
    p = isub.add_parser("delete", aliases=["rm"], help="delete images")
    p.add_argument("images", nargs="+", metavar="[REMOTE:]IMAGE")
    p.set_defaults(func=delete_images)

    alias = isub.add_parser("alias", help="image aliases")
    asub = alias.add_subparsers(dest="alias_cmd", metavar="COMMAND",
                                required=True)
    p = asub.add_parser("create", help="name an image")
    p.add_argument("alias", metavar="[REMOTE:]ALIAS")
    p.add_argument("fingerprint")
    p.add_argument("--description", default="")
    p.set_defaults(func=alias_create)
    p = asub.add_parser("delete", aliases=["rm"], help="remove an alias")
    p.add_argument("alias", metavar="[REMOTE:]ALIAS")
    p.set_defaults(func=alias_delete)
    p = asub.add_parser("list", aliases=["ls"], help="list aliases")
    p.add_argument("remote", nargs="?", metavar="[REMOTE:]")
    output.add_format(p)
    p.set_defaults(func=alias_list)


def fingerprint_of(client: Client, image: str) -> str:
    """An alias or a fingerprint prefix -> the full fingerprint."""
    try:
        return client.get(f"/1.0/images/aliases/{q(image)}")["target"]
    except NotFound:
        pass
    try:
        return client.get(f"/1.0/images/{q(image)}")["fingerprint"]
    except NotFound:
        raise NotFound(f"image {image!r} not found (no such alias or "
                       f"fingerprint)", 404)


def import_image(ctx: Context, args) -> int:
    client = ctx.remote_only(args.remote)
    try:
        f = open(args.file, "rb")
    except OSError as err:
        raise CliError(f"cannot read {args.file}: {err.strerror}")
    reader = progress.UploadReader(f, "Uploading", ctx.show_progress())
    headers = {"Content-Type": "application/octet-stream",
               "X-LXD-filename": os.path.basename(args.file),
               "X-LXD-public": "1" if args.public else "0"}
    ticker = ctx.ticker("Unpacking")
    try:
        op = client.call("POST", "/1.0/images", data=reader,
                         headers=headers, progress=ticker)
    finally:
        reader.close()
        ticker.close()
        f.close()
    meta = (op or {}).get("metadata") or {}
    fingerprint = meta.get("fingerprint")
    if not fingerprint:
        raise CliError("the server did not report the image's fingerprint")
    for alias in args.alias:
        client.call("POST", "/1.0/images/aliases",
                    json={"name": alias, "target": fingerprint,
                          "description": ""})
    say(ctx, f"Image imported with fingerprint: {fingerprint}")
    return 0


def list_images(ctx: Context, args) -> int:
    client = ctx.remote_only(args.remote)
    items = [i for i in client.get("/1.0/images", recursion=1)
             if isinstance(i, dict)]
    rows = []
    for i in items:
        aliases = "\n".join(a.get("name", "") for a in
                            i.get("aliases") or [])
        props = i.get("properties") or {}
        rows.append([aliases, str(i.get("fingerprint", ""))[:12],
                     bool(i.get("public")), props.get("description", ""),
                     i.get("architecture", ""), output.size(i.get("size")),
                     output.when(i.get("uploaded_at"))])
    output.emit(args.format, items,
                ["ALIAS", "FINGERPRINT", "PUBLIC", "DESCRIPTION",
                 "ARCHITECTURE", "SIZE", "UPLOAD DATE"], rows)
    return 0


def delete_images(ctx: Context, args) -> int:
    for text in args.images:
        target = address.parse(ctx.config, text)
        client = ctx.client(target.remote)
        fingerprint = fingerprint_of(client, target.name)
        client.call("DELETE", f"/1.0/images/{q(fingerprint)}")
    return 0


def alias_create(ctx: Context, args) -> int:
    target = address.parse(ctx.config, args.alias)
    client = ctx.client(target.remote)
    fingerprint = fingerprint_of(client, args.fingerprint)
    client.call("POST", "/1.0/images/aliases",
                json={"name": target.name, "target": fingerprint,
                      "description": args.description})
    return 0


def alias_delete(ctx: Context, args) -> int:
    target = address.parse(ctx.config, args.alias)
    ctx.client(target.remote).call(
        "DELETE", f"/1.0/images/aliases/{q(target.name)}")
    return 0


def alias_list(ctx: Context, args) -> int:
    client = ctx.remote_only(args.remote)
    items = [a for a in client.get("/1.0/images/aliases", recursion=1)
             if isinstance(a, dict)]
    rows = [[a.get("name"), str(a.get("target", ""))[:12],
             a.get("description", "")] for a in items]
    output.emit(args.format, items, ["ALIAS", "FINGERPRINT",
                                     "DESCRIPTION"], rows)
    return 0
