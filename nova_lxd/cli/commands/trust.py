"""``trust add/list/remove``: the server's trust store of client
certificates, and the trust tokens with which a new client adds itself
(``nlxc remote add NAME URL --token TOKEN`` on that client). Like lxc's
``config trust``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from nova_lxd.cli import output
from nova_lxd.cli.client import q
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import CliError


def register(sub) -> None:
    t = sub.add_parser("trust", help="trusted client certificates and "
                                     "trust tokens")
    tsub = t.add_subparsers(dest="trust_cmd", metavar="COMMAND",
                            required=True)
    p = tsub.add_parser("add", help="make a single-use trust token, or "
                                    "trust a certificate file")
    p.add_argument("name", metavar="[REMOTE:]CLIENT_NAME")
    p.add_argument("--certificate", metavar="PEM_FILE",
                   help="trust this certificate at once (e.g. another "
                        "host's daemon/server.crt, for moves between "
                        "hosts) instead of making a token")
    p.set_defaults(func=add)
    p = tsub.add_parser("list", aliases=["ls"],
                        help="list trusted certificates")
    p.add_argument("remote", nargs="?", metavar="[REMOTE:]")
    output.add_format(p)
    p.set_defaults(func=list_trusted)
    p = tsub.add_parser("remove", aliases=["rm"],
                        help="revoke a certificate (at once)")
    p.add_argument("fingerprint", metavar="[REMOTE:]FINGERPRINT")
    p.set_defaults(func=remove)


def token_of(meta: dict) -> str:
    """The token a token operation describes (assembled from its fields
    when the server does not give it ready-made, as LXD does not)."""
    if isinstance(meta.get("token"), str):
        return meta["token"]
    fields = {k: meta.get(k) for k in ("client_name", "fingerprint",
                                       "addresses", "secret",
                                       "expires_at")}
    if not fields["client_name"]:
        fields["client_name"] = (meta.get("request") or {}).get("name")
    if not fields["secret"]:
        raise CliError("the server did not return a trust token")
    return base64.b64encode(json.dumps(
        fields, separators=(",", ":")).encode()).decode()


def add(ctx: Context, args) -> int:
    remote, _, name = args.name.rpartition(":")
    client = ctx.remote_only(remote + ":" if remote else None)
    if not name:
        raise CliError("a client name is required")
    if args.certificate:
        try:
            pem = Path(args.certificate).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {args.certificate}: {exc}"
                           ) from None
        client.call("POST", "/1.0/certificates",
                    json={"type": "client", "name": name,
                          "certificate": pem})
        print(f"Certificate {name} trusted")
        return 0
    body = client.start("POST", "/1.0/certificates",
                        json={"type": "client", "name": name,
                              "token": True})
    meta = (body.get("metadata") or {}).get("metadata") or {}
    print(f"Client {name} certificate add token:")
    print(token_of(meta))
    return 0


def list_trusted(ctx: Context, args) -> int:
    client = ctx.remote_only(args.remote)
    items = [c for c in client.get("/1.0/certificates", recursion=1)
             if isinstance(c, dict)]
    for item in items:
        item.pop("certificate", None)
    rows = [[c.get("name"), c.get("type"),
             str(c.get("fingerprint", ""))[:12]] for c in items]
    output.emit(args.format, items, ["NAME", "TYPE", "FINGERPRINT"], rows)
    return 0


def remove(ctx: Context, args) -> int:
    remote, _, fingerprint = args.fingerprint.rpartition(":")
    client = ctx.remote_only(remote + ":" if remote else None)
    client.call("DELETE", f"/1.0/certificates/{q(fingerprint)}")
    return 0
