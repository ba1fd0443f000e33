"""Envelopes, ETags, error mapping and the OpenAPI document."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import make_mocked_request

from nova_lxd.daemon import envelopes, errors, openapi, routes
from nova_lxd.engine import errors as engine_errors


def body(response):
    return json.loads(response.text)


def test_sync_envelope():
    r = envelopes.sync({"a": 1}, etag="abc", location="/1.0/x")
    assert r.status == 200
    assert r.headers["ETag"] == '"abc"'
    assert r.headers["Location"] == "/1.0/x"
    b = body(r)
    assert (b["type"], b["status_code"], b["metadata"]) == (
        "sync", 200, {"a": 1})


def test_async_envelope():
    r = envelopes.async_({"id": "42", "class": "task"})
    assert r.status == 202
    assert r.headers["Location"] == "/1.0/operations/42"
    b = body(r)
    assert (b["type"], b["status_code"], b["operation"]) == (
        "async", 100, "/1.0/operations/42")


def test_error_envelope():
    b = body(envelopes.error("nope", 404))
    assert (b["type"], b["error_code"], b["error"]) == ("error", 404, "nope")


def test_etag_is_stable_and_order_free():
    assert envelopes.etag_of({"a": 1, "b": [1, 2]}) == \
        envelopes.etag_of({"b": [1, 2], "a": 1})
    assert envelopes.etag_of({"a": 1}) != envelopes.etag_of({"a": 2})


@pytest.mark.parametrize("header,ok", [
    (None, True), ('"cur"', True), ("cur", True), ('W/"cur"', True),
    ('"old", "cur"', True), ("*", True), ('"old"', False)])
def test_if_match(header, ok):
    headers = {"If-Match": header} if header else {}
    request = make_mocked_request("PUT", "/1.0/instances/x",
                                  headers=headers)
    if ok:
        envelopes.check_if_match(request, "cur")
    else:
        with pytest.raises(errors.PreconditionFailed):
            envelopes.check_if_match(request, "cur")


@pytest.mark.parametrize("exc,status", [
    (engine_errors.ContainerNotFound(name="x"), 404),
    (engine_errors.ContainerExists(name="x"), 409),
    (engine_errors.InvalidName(name="x", reason="r"), 400),
    (engine_errors.HostError(reason="r"), 500),
    (errors.Forbidden("no"), 403),
    (RuntimeError("secret host detail"), 500)])
def test_status_of(exc, status):
    assert errors.status_of(exc) == status


def test_unexpected_errors_do_not_leak():
    assert errors.message_of(RuntimeError("/etc/shadow")) == \
        "Internal server error"
    assert "x" in errors.message_of(engine_errors.ContainerNotFound(name="x"))


def test_openapi_lists_every_route():
    doc = openapi.document()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items()
                  for m in ops}
    served = {(r.method, openapi._PARAM.sub(r"{\1}", r.path))
              for r in routes.ROUTES}
    assert documented == served
    assert doc["openapi"].startswith("3.")
