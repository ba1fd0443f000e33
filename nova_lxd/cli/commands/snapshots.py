"""``snapshot create/list/restore/delete``: ``.../snapshots`` and a
restore as ``PUT /1.0/instances/NAME {"restore": SNAP}``, as in LXD."""

from __future__ import annotations

from nova_lxd.cli import output
from nova_lxd.cli.client import q
from nova_lxd.cli.commands.instances import run, say
from nova_lxd.cli.context import Context


def register(sub) -> None:
    s = sub.add_parser("snapshot", help="instance snapshots")
    ssub = s.add_subparsers(dest="snapshot_cmd", metavar="COMMAND",
                            required=True)
    p = ssub.add_parser("create", help="take a snapshot")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    p.add_argument("snapshot", nargs="?",
                   help="snapshot name (default: snapN)")
    p.add_argument("--stateful", action="store_true",
                   help="include the running state (CRIU)")
    p.set_defaults(func=create)
    p = ssub.add_parser("list", aliases=["ls"], help="list snapshots")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    output.add_format(p)
    p.set_defaults(func=list_snapshots)
    p = ssub.add_parser("restore", help="restore an instance from a "
                                        "snapshot")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    p.add_argument("snapshot")
    p.set_defaults(func=restore)
    p = ssub.add_parser("delete", aliases=["rm"], help="delete a snapshot")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    p.add_argument("snapshot")
    p.set_defaults(func=delete)


def next_name(existing: list[str]) -> str:
    """``snapN`` with N one past the highest taken (as lxc names them)."""
    taken = set(existing)
    n = 0
    while f"snap{n}" in taken:
        n += 1
    return f"snap{n}"


def _names(items: list) -> list[str]:
    names = []
    for s in items:
        name = s.get("name") if isinstance(s, dict) else str(s)
        names.append(str(name).rsplit("/", 1)[-1])
    return names


def create(ctx: Context, args) -> int:
    client, name = ctx.instance(args.name)
    path = f"/1.0/instances/{q(name)}/snapshots"
    snap = args.snapshot or next_name(_names(client.get(path)))
    run(ctx, client, "POST", path, f"snapshot {name}/{snap}",
        json={"name": snap, "stateful": args.stateful})
    say(ctx, f"Snapshot {snap} of {name} created")
    return 0


def list_snapshots(ctx: Context, args) -> int:
    client, name = ctx.instance(args.name)
    items = client.get(f"/1.0/instances/{q(name)}/snapshots", recursion=1)
    rows = [[s.get("name"), output.when(s.get("created_at")),
             bool(s.get("stateful"))] for s in items
            if isinstance(s, dict)]
    output.emit(args.format, items, ["NAME", "TAKEN AT", "STATEFUL"], rows)
    return 0


def restore(ctx: Context, args) -> int:
    client, name = ctx.instance(args.name)
    run(ctx, client, "PUT", f"/1.0/instances/{q(name)}",
        f"restore {name}/{args.snapshot}",
        json={"restore": args.snapshot})
    return 0


def delete(ctx: Context, args) -> int:
    client, name = ctx.instance(args.name)
    run(ctx, client, "DELETE",
        f"/1.0/instances/{q(name)}/snapshots/{q(args.snapshot)}",
        f"delete {name}/{args.snapshot}")
    return 0
