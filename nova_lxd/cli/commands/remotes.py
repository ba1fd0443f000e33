"""``remote add/list/remove/switch`` and ``version``.

``remote add`` is the one moment trust is decided: the server's
certificate is fetched and its sha256 fingerprint shown; it is pinned
only when the trust token vouches for it (LXD tokens carry the server's
fingerprint), when it equals ``--fingerprint``, after the user says yes,
or with ``--accept-certificate``. A certificate that contradicts the
token or ``--fingerprint`` is refused outright. Then the client's own
certificate is added to the server's trust store with the token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import sys
from importlib import metadata
from urllib.parse import urlsplit

from nova_lxd.cli import certs, output, transport
from nova_lxd.cli.client import Client
from nova_lxd.cli.config import Remote
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import CertificateMismatch, CliError


def register(sub) -> None:
    r = sub.add_parser("remote", help="servers this client talks to")
    rsub = r.add_subparsers(dest="remote_cmd", metavar="COMMAND",
                            required=True)
    p = rsub.add_parser("add", help="add an HTTPS remote")
    p.add_argument("name")
    p.add_argument("url", nargs="?",
                   help="https://HOST[:PORT] (default: from the token)")
    p.add_argument("--token", help="trust token from the server "
                                   "(nlxd's 'certificates add')")
    p.add_argument("--accept-certificate", action="store_true",
                   help="pin the server's certificate without asking")
    p.add_argument("--fingerprint",
                   help="expected sha256 fingerprint of the server")
    p.set_defaults(func=add)
    p = rsub.add_parser("list", aliases=["ls"], help="list remotes")
    output.add_format(p)
    p.set_defaults(func=list_remotes)
    p = rsub.add_parser("remove", aliases=["rm"], help="forget a remote")
    p.add_argument("name")
    p.set_defaults(func=remove)
    p = rsub.add_parser("switch", help="set the default remote")
    p.add_argument("name")
    p.set_defaults(func=switch)
    p = rsub.add_parser("get-default", help="print the default remote")
    p.set_defaults(func=get_default)

    p = sub.add_parser("version", help="client and server versions")
    p.add_argument("remote", nargs="?", metavar="[REMOTE:]")
    output.add_format(p)
    p.set_defaults(func=version)


def decode_token(token: str) -> dict:
    """An LXD trust token: base64 of JSON ``{client_name, fingerprint,
    addresses, secret, expires_at}``."""
    text = token.strip()
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            data = json.loads(decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError):
            continue
        if isinstance(data, dict) and "secret" in data:
            return data
    raise CliError("the trust token is not valid (expected the base64 "
                   "text the server printed)")


def normalize_url(text: str) -> str:
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise CliError(f"{text!r}: remotes are https://HOST[:PORT]")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{parts.port or 8443}"


def confirm(fingerprint: str) -> bool:
    if not sys.stdin.isatty():
        raise CliError("cannot ask to confirm the certificate without a "
                       "terminal: check the fingerprint and pass "
                       "--accept-certificate or --fingerprint")
    answer = input("ok (y/n)? ").strip().lower()
    return answer in ("y", "yes")


def add(ctx: Context, args) -> int:
    config = ctx.config
    token = decode_token(args.token) if args.token else None
    if args.url:
        url = normalize_url(args.url)
    elif token and token.get("addresses"):
        url = normalize_url(token["addresses"][0])
    else:
        raise CliError("give the remote's URL (or a token with addresses)")
    if args.name in config.remotes:
        raise CliError(f"remote {args.name!r} already exists")
    try:
        der = transport.fetch_server_certificate(url)
    except OSError as err:
        raise CliError(f"cannot fetch the certificate of {url}: {err}")
    fingerprint = transport.fingerprint_of(der)
    print(f"Certificate fingerprint: {fingerprint}")
    print(f"  ({certs.describe(der)})")
    vouched = False
    for what, expected in (("--fingerprint", args.fingerprint),
                           ("the trust token",
                            (token or {}).get("fingerprint"))):
        if not expected:
            continue
        if not hmac.compare_digest(
                transport.normalize_fingerprint(expected), fingerprint):
            raise CertificateMismatch(
                f"the server's certificate fingerprint does not match "
                f"{what} ({transport.normalize_fingerprint(expected)}): "
                f"refusing to add {url}")
        vouched = True
    if not (vouched or args.accept_certificate or confirm(fingerprint)):
        raise CliError("server certificate not accepted")

    certs.ensure_client_certificate(config.client_cert, config.client_key)
    remote = Remote(args.name, url, fingerprint)
    client = Client(remote, config)
    try:
        server = client.get("/1.0")
        if server.get("auth") != "trusted":
            if not args.token:
                raise CliError(f"{url} does not trust this client yet: "
                               f"pass --token with a trust token from "
                               f"the server")
            # No name: as with lxc, the server names the certificate
            # after the token, which it must spend to find that name.
            client.call("POST", "/1.0/certificates", json={
                "type": "client",
                "certificate": certs.pem_body(config.client_cert),
                "trust_token": args.token.strip()})
            server = client.get("/1.0")
            if server.get("auth") != "trusted":
                raise CliError(f"{url} still does not trust this client")
    finally:
        client.close()
    path = config.server_cert(args.name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(certs.der_to_pem(der))
    config.add_remote(remote)
    config.save()
    print(f"Client certificate now trusted by {args.name} ({url})")
    return 0


def list_remotes(ctx: Context, args) -> int:
    config = ctx.config
    items, rows = [], []
    for r in sorted(config.remotes.values(), key=lambda r: r.name):
        current = r.name == config.default_remote
        auth = "file access" if r.is_unix else "tls"
        items.append({"name": r.name, "addr": r.addr, "auth_type": auth,
                      "fingerprint": r.fingerprint, "default": current})
        rows.append([r.name + (" (current)" if current else ""),
                     r.addr, auth, (r.fingerprint or "")[:12]])
    output.emit(args.format, items, ["NAME", "URL", "AUTH TYPE",
                                     "FINGERPRINT"], rows)
    return 0


def remove(ctx: Context, args) -> int:
    ctx.config.remove_remote(args.name)
    ctx.config.save()
    return 0


def switch(ctx: Context, args) -> int:
    ctx.config.remote(args.name)
    ctx.config.default_remote = args.name
    ctx.config.save()
    return 0


def get_default(ctx: Context, args) -> int:
    print(ctx.config.default_remote)
    return 0


def client_version() -> str:
    try:
        return metadata.version("nova-lxd")
    except metadata.PackageNotFoundError:
        return "unknown"


def version(ctx: Context, args) -> int:
    client = ctx.remote_only(args.remote)
    server = client.get("/1.0")
    env = server.get("environment") or {}
    data = {"client_version": client_version(),
            "server_version": env.get("server_version", ""),
            "api_version": server.get("api_version", ""),
            "server": env.get("server", ""),
            "remote": client.remote.name}
    human = (f"Client version: {data['client_version']}\n"
             f"Server version: {data['server_version']} "
             f"(API {data['api_version']})")
    output.emit(args.format, data, human=human if args.format == "table"
                else None)
    return 0


