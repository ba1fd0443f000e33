"""Instance lifecycle: launch, list, info, start/stop/restart/freeze/
unfreeze, rename, delete, and ``config``
(limits and other keys)."""

from __future__ import annotations

import secrets
import sys

from nova_lxd.cli import address, output
from nova_lxd.cli.client import Client, q
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import CliError, NotFound

STATE_ACTIONS = ("start", "stop", "restart", "freeze", "unfreeze")


def register(sub) -> None:
    p = sub.add_parser("launch", help="create and start an instance")
    p.add_argument("image", help="[REMOTE:]ALIAS or fingerprint")
    p.add_argument("name", nargs="?", help="[REMOTE:]NAME")
    p.add_argument("-c", "--config", action="append", default=[],
                   metavar="KEY=VALUE", help="config key (repeatable)")
    p.add_argument("--no-start", action="store_true",
                   help="create only (like lxc init)")
    p.set_defaults(func=launch)

    p = sub.add_parser("list", aliases=["ls"], help="list instances")
    p.add_argument("remote", nargs="?", metavar="[REMOTE:][FILTER]")
    output.add_format(p)
    p.set_defaults(func=list_instances)

    p = sub.add_parser("info", help="show an instance's state")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    output.add_format(p, default="human")
    p.set_defaults(func=info)

    for action in STATE_ACTIONS:
        p = sub.add_parser(action, help=f"{action} instances")
        p.add_argument("names", nargs="+", metavar="[REMOTE:]NAME")
        if action in ("stop", "restart"):
            p.add_argument("-f", "--force", action="store_true",
                           help="kill instead of a clean shutdown")
            p.add_argument("--timeout", type=int, default=30,
                           help="seconds for a clean shutdown (30)")
        p.set_defaults(func=change_state, action=action)

    p = sub.add_parser("delete", aliases=["rm"], help="delete instances")
    p.add_argument("names", nargs="+", metavar="[REMOTE:]NAME")
    p.add_argument("-f", "--force", action="store_true",
                   help="stop a running instance first")
    p.set_defaults(func=delete)

    p = sub.add_parser("rename",
                       help="rename a stopped instance (on one remote)")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    p.add_argument("new_name", metavar="[REMOTE:]NEW_NAME")
    p.set_defaults(func=rename)

    config = sub.add_parser("config", help="instance configuration")
    csub = config.add_subparsers(dest="config_cmd", metavar="COMMAND",
                                 required=True)
    p = csub.add_parser("set", help="set keys (PATCH)")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    p.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    p.set_defaults(func=config_set)
    p = csub.add_parser("unset", help="remove a key")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    p.add_argument("key")
    p.set_defaults(func=config_unset)
    p = csub.add_parser("get", help="print one key's value")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    p.add_argument("key")
    p.set_defaults(func=config_get)
    p = csub.add_parser("show", help="show config and devices")
    p.add_argument("name", metavar="[REMOTE:]NAME")
    output.add_format(p, default="yaml")
    p.set_defaults(func=config_show)


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> {"a": "1", "b": "x=y"}; ``KEY VALUE`` as
    two words is accepted too, as lxc does."""
    if len(pairs) == 2 and "=" not in pairs[0]:
        return {pairs[0]: pairs[1]}
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{pair!r}: expected KEY=VALUE")
        result[key] = value
    return result


def resolve_image(client: Client, image: str) -> dict:
    """An image source: by alias when the alias exists, else by
    fingerprint (prefix)."""
    try:
        alias = client.get(f"/1.0/images/aliases/{q(image)}")
    except NotFound:
        return {"type": "image", "fingerprint": image}
    return {"type": "image", "alias": image,
            "fingerprint": alias.get("target")}


def launch(ctx: Context, args) -> int:
    image = address.parse(ctx.config, args.image)
    if not image.name:
        raise CliError("an image alias or fingerprint is required")
    if args.name:
        target = address.parse_name(ctx.config, args.name)
        if ":" in args.image and image.remote != target.remote:
            raise CliError(f"image {args.image!r} is on remote "
                           f"{image.remote!r}: import it on "
                           f"{target.remote!r} first")
    else:
        generated = "nlxc-" + secrets.token_hex(3)
        target = address.Target(image.remote, generated)
    client = ctx.client(target.remote)
    body = {"name": target.name, "type": "container",
            "source": resolve_image(client, image.name),
            "config": parse_pairs(args.config) if args.config else {}}
    say(ctx, f"Creating {target.name}")
    run(ctx, client, "POST", "/1.0/instances", f"create {target.name}",
        json=body)
    if not args.no_start:
        say(ctx, f"Starting {target.name}")
        set_state(ctx, client, target.name, {"action": "start"})
    return 0


def say(ctx: Context, text: str) -> None:
    if not ctx.quiet:
        print(text, flush=True)


def run(ctx: Context, client: Client, method: str, path: str, desc: str,
        **kwargs):
    """One call whose operation is followed by a ticker."""
    ticker = ctx.ticker(desc)
    try:
        return client.call(method, path, progress=ticker, **kwargs)
    finally:
        ticker.close()


def set_state(ctx: Context, client: Client, name: str, body: dict):
    return run(ctx, client, "PUT", f"/1.0/instances/{q(name)}/state",
               f"{body['action']} {name}", json=body)


def ipv4(state: dict | None, family: str = "inet") -> str:
    """Global addresses of an instance, ``addr (iface)`` per line."""
    lines = []
    for iface, net in sorted(((state or {}).get("network") or {}).items()):
        if iface == "lo":
            continue
        for a in net.get("addresses") or []:
            if a.get("family") == family and a.get("scope") == "global":
                lines.append(f"{a.get('address')} ({iface})")
    return "\n".join(lines)


def list_instances(ctx: Context, args) -> int:
    spec = args.remote or ""
    if ":" in spec:
        target = address.parse(ctx.config, spec)
        client, needle = ctx.client(target.remote), target.name
    else:
        client, needle = ctx.client(), spec
    items = client.get("/1.0/instances", recursion=2)
    items = [i for i in items if isinstance(i, dict)
             and needle in i.get("name", "")]
    # SNAPSHOTS only where the server lists them with the instances
    # (LXD does at recursion=2): never one request per instance.
    counted = any(isinstance(i.get("snapshots"), list) for i in items)
    headers = ["NAME", "STATE", "IPV4", "IPV6", "TYPE"]
    rows = []
    for i in items:
        row = [i.get("name"), str(i.get("status", "")).upper(),
               ipv4(i.get("state")), ipv4(i.get("state"), "inet6"),
               str(i.get("type", "container")).upper()]
        if counted:
            row.append(len(i.get("snapshots") or []))
        rows.append(row)
    if counted:
        headers.append("SNAPSHOTS")
    output.emit(args.format, items, headers, rows)
    return 0


def info(ctx: Context, args) -> int:
    client, name = ctx.instance(args.name)
    inst = client.get(f"/1.0/instances/{q(name)}")
    state = client.get(f"/1.0/instances/{q(name)}/state")
    snaps = client.get(f"/1.0/instances/{q(name)}/snapshots", recursion=1)
    data = {"instance": inst, "state": state, "snapshots": snaps}
    human = None
    if args.format == "human":
        human = _info_text(inst, state, snaps)
    output.emit(args.format, data, human=human)
    return 0


def _info_text(inst: dict, state: dict, snaps: list) -> str:
    config = inst.get("config") or {}
    lines = [
        f"Name: {inst.get('name')}",
        f"Status: {str(inst.get('status', '')).upper()}",
        f"Type: {inst.get('type', 'container')}",
        f"Architecture: {inst.get('architecture', '')}",
        f"Created: {output.when(inst.get('created_at'))}",
    ]
    if config.get("image.description"):
        lines.append(f"Image: {config['image.description']}")
    if state.get("pid"):
        lines.append(f"PID: {state['pid']}")
    if state.get("processes") not in (None, -1):
        lines.append(f"Processes: {state['processes']}")
    memory = state.get("memory") or {}
    cpu = state.get("cpu") or {}
    if memory or cpu:
        lines.append("Resources:")
        if memory.get("usage") is not None:
            lines.append(f"  Memory usage: {output.size(memory['usage'])}")
        if memory.get("usage_peak"):
            lines.append(
                f"  Memory peak: {output.size(memory['usage_peak'])}")
        if cpu.get("usage") is not None:
            lines.append(f"  CPU usage: {cpu['usage'] / 1e9:.2f}s")
    limits = {k: v for k, v in config.items() if k.startswith("limits.")}
    if limits:
        lines.append("Limits:")
        lines.extend(f"  {k}: {v}" for k, v in sorted(limits.items()))
    addrs = ipv4(state) + ("\n" if ipv4(state, "inet6") else "") + ipv4(
        state, "inet6")
    if addrs.strip():
        lines.append("Addresses:")
        lines.extend(f"  {a}" for a in addrs.split("\n") if a)
    if snaps:
        lines.append("Snapshots:")
        for s in snaps:
            if isinstance(s, dict):
                lines.append(f"  {s.get('name')} "
                             f"(taken at {output.when(s.get('created_at'))})")
            else:
                lines.append(f"  {str(s).rsplit('/', 1)[-1]}")
    return "\n".join(lines)


def change_state(ctx: Context, args) -> int:
    for text in args.names:
        client, name = ctx.instance(text)
        body: dict = {"action": args.action}
        if args.action in ("stop", "restart"):
            body["force"] = args.force
            body["timeout"] = args.timeout
        set_state(ctx, client, name, body)
    return 0


def delete(ctx: Context, args) -> int:
    for text in args.names:
        client, name = ctx.instance(text)
        inst = client.get(f"/1.0/instances/{q(name)}")
        if str(inst.get("status", "")).lower() in ("running", "frozen"):
            if not args.force:
                raise CliError(f"instance {name!r} is running: stop it "
                               f"first or use --force")
            set_state(ctx, client, name,
                      {"action": "stop", "force": True, "timeout": -1})
        run(ctx, client, "DELETE", f"/1.0/instances/{q(name)}",
            f"delete {name}")
    return 0


def rename(ctx: Context, args) -> int:
    """``rename``, and ``move`` on one remote (``commands.migrate``
    moves between remotes)."""
    source = address.parse_name(ctx.config, args.name)
    target = address.parse_name(ctx.config, args.new_name)
    if ":" in args.new_name and target.remote != source.remote:
        raise CliError("rename works on one remote: use 'nlxc move' to "
                       "move an instance to another remote")
    client = ctx.client(source.remote)
    run(ctx, client, "POST", f"/1.0/instances/{q(source.name)}",
        f"rename {source.name}", json={"name": target.name})
    return 0


def config_set(ctx: Context, args) -> int:
    client, name = ctx.instance(args.name)
    run(ctx, client, "PATCH", f"/1.0/instances/{q(name)}",
        f"update {name}", json={"config": parse_pairs(args.pairs)})
    return 0


def config_unset(ctx: Context, args) -> int:
    """GET then PUT without the key, guarded by the ETag so a change
    made meanwhile is not overwritten."""
    client, name = ctx.instance(args.name)
    path = f"/1.0/instances/{q(name)}"
    resp = client.raw("GET", path)
    resp_etag = resp.headers.get("ETag")
    inst = resp.json()["metadata"]
    config = dict(inst.get("config") or {})
    if args.key not in config:
        raise CliError(f"{args.key!r} is not set on {name!r}")
    del config[args.key]
    writable = {k: inst[k] for k in ("architecture", "config", "devices",
                                     "ephemeral", "profiles",
                                     "description") if k in inst}
    writable["config"] = config
    headers = {"If-Match": resp_etag} if resp_etag else {}
    run(ctx, client, "PUT", path, f"update {name}", json=writable,
        headers=headers)
    return 0


def config_get(ctx: Context, args) -> int:
    client, name = ctx.instance(args.name)
    inst = client.get(f"/1.0/instances/{q(name)}")
    value = (inst.get("config") or {}).get(args.key)
    if value is not None:
        sys.stdout.write(f"{value}\n")
    return 0


def config_show(ctx: Context, args) -> int:
    client, name = ctx.instance(args.name)
    inst = client.get(f"/1.0/instances/{q(name)}")
    data = {k: inst.get(k) for k in ("config", "devices", "profiles",
                                     "ephemeral", "description")
            if k in inst}
    output.emit(args.format if args.format != "table" else "yaml", data)
    return 0
