"""The auth middleware: unix socket trusted, TLS by fingerprint, and
untrusted clients limited to GET /1.0 and POST /1.0/certificates."""

from __future__ import annotations

import asyncio
import socket
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from nova_lxd.daemon import errors, middleware
from nova_lxd.daemon.auth.trust import TrustStore
from nova_lxd.daemon.context import CONTEXT


def _request(method, path, tmp_path, *, unix=False, der=None,
             trusted=()):
    app = web.Application()
    store = TrustStore(tmp_path)
    store._certs = {fp: {} for fp in trusted}
    app[CONTEXT] = mock.Mock(trust=store)
    sock = mock.Mock(family=socket.AF_UNIX if unix else socket.AF_INET)
    ssl_object = None
    if not unix:
        ssl_object = mock.Mock()
        ssl_object.getpeercert.return_value = der
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key: {
        "socket": sock, "ssl_object": ssl_object}.get(key)
    return make_mocked_request(method, path, app=app, transport=transport)


async def _ok(request):
    return web.Response(text="ok")


def run(request):
    return asyncio.run(middleware.auth_middleware(request, _ok))


def test_unix_socket_is_trusted(tmp_path):
    request = _request("DELETE", "/1.0/instances/x", tmp_path, unix=True)
    assert run(request).text == "ok"
    assert middleware.is_trusted(request)


@pytest.mark.parametrize("method,path,allowed", [
    ("GET", "/1.0", True), ("POST", "/1.0/certificates", True),
    ("GET", "/1.0/certificates", False), ("GET", "/1.0/instances", False),
    ("DELETE", "/1.0/certificates/ab", False)])
def test_untrusted_limits(tmp_path, method, path, allowed):
    request = _request(method, path, tmp_path, der=b"cert")
    if allowed:
        assert run(request).text == "ok"
        assert not middleware.is_trusted(request)
    else:
        with pytest.raises(errors.Forbidden):
            run(request)


def test_trusted_fingerprint(tmp_path):
    import hashlib
    fp = hashlib.sha256(b"cert").hexdigest()
    request = _request("GET", "/1.0/instances", tmp_path, der=b"cert",
                       trusted=[fp])
    assert run(request).text == "ok"
    with pytest.raises(errors.Forbidden):
        run(_request("GET", "/1.0/instances", tmp_path, der=None,
                     trusted=[fp]))


def test_error_middleware_hides_tracebacks():
    async def boom(request):
        raise RuntimeError("/etc/shadow leaked")

    request = make_mocked_request("GET", "/1.0")
    response = asyncio.run(middleware.error_middleware(request, boom))
    assert response.status == 500
    assert "shadow" not in response.text
    assert '"type": "error"' in response.text


def test_json_body_limits():
    async def read(raw: bytes):
        request = make_mocked_request("POST", "/1.0/instances")
        request.read = mock.AsyncMock(return_value=raw)
        return await middleware.json_body(request)

    assert asyncio.run(read(b"")) == {}
    assert asyncio.run(read(b'{"a": 1}')) == {"a": 1}
    for raw in (b"[1]", b"{", b"\xff", b"[" * 100000 + b"]" * 100000):
        with pytest.raises(errors.BadRequest):
            asyncio.run(read(raw))
