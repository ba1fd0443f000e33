"""``/1.0/certificates``: the trust store, and trust tokens.

Untrusted clients reach only ``POST`` with a valid token (see the auth
middleware); the certificate added is the one in the body or, without
one, the client's own TLS certificate.
"""

from __future__ import annotations

import base64

from aiohttp import web

from nova_lxd.daemon import envelopes, errors
from nova_lxd.daemon.auth.trust import parse_certificate
from nova_lxd.daemon.context import ctx
from nova_lxd.daemon.handlers.events import close_streams
from nova_lxd.daemon.middleware import is_trusted, json_body


def _url(fingerprint: str) -> str:
    return f"/1.0/certificates/{fingerprint}"


async def list_certificates(request: web.Request) -> web.Response:
    certs = ctx(request).trust.all()
    if envelopes.recursion(request) >= 1:
        return envelopes.sync(certs)
    return envelopes.sync([_url(c["fingerprint"]) for c in certs])


async def add_certificate(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await json_body(request)
    name = body.get("name") or ""
    if not isinstance(name, str):
        raise errors.BadRequest("name is a string")
    if body.get("type", "client") not in ("client", ""):
        raise errors.BadRequest("Only client certificates are supported")
    if body.get("token") is True:
        if not is_trusted(request):
            raise errors.Forbidden("not authorized")
        return _token(request, name)
    cert_text = body.get("certificate") or ""
    if not isinstance(cert_text, str):
        raise errors.BadRequest("certificate is a string")
    if cert_text:
        pem, fingerprint = _parse(cert_text)
    else:
        pem, fingerprint = _peer(request)
    if c.trust.trusted(fingerprint):
        raise errors.Conflict("Certificate already in trust store")
    if not is_trusted(request):
        if body.get("password"):
            raise errors.Forbidden("Trust passwords are not supported: "
                                   "use a trust token")
        token = body.get("trust_token")
        if not isinstance(token, str):
            raise errors.Forbidden("not authorized")
        # Always spent and checked, whatever else the body says.
        token_name = c.trust.use_token(token)
        name = name or token_name
    entry = c.trust.add(pem, fingerprint, name)
    c.events.lifecycle("certificate-created", _url(fingerprint))
    return envelopes.sync(None, status=201,
                          location=_url(entry["fingerprint"]))


def _parse(text: str) -> tuple[str, str]:
    return parse_certificate(text)


def _peer(request: web.Request) -> tuple[str, str]:
    ssl_object = request.transport.get_extra_info("ssl_object") \
        if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if not der:
        raise errors.BadRequest("No certificate in the request or the "
                                "TLS connection")
    return _parse(base64.b64encode(der).decode())


def _token(request: web.Request, name: str) -> web.Response:
    c = ctx(request)
    settings = c.settings
    token = c.trust.new_token(
        name, settings.trust_token_ttl, settings.server_fingerprint,
        settings.addresses)
    op = c.operations.task("Trust token", {}, lambda: None)
    op.kind = "token"
    op.metadata = {"request": {"name": name, "type": "client"}, **token}
    return envelopes.async_(op.to_dict())


async def get_certificate(request: web.Request) -> web.Response:
    entry = ctx(request).trust.get(request.match_info["fingerprint"])
    return envelopes.sync(entry, etag=envelopes.etag_of(entry))


async def delete_certificate(request: web.Request) -> web.Response:
    c = ctx(request)
    fingerprint = c.trust.get(request.match_info["fingerprint"])[
        "fingerprint"]
    c.trust.remove(fingerprint)
    await close_streams(request.app, fingerprint)
    c.events.lifecycle("certificate-deleted", _url(fingerprint))
    return envelopes.sync(None)
