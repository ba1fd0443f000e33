"""schemathesis over the daemon's own OpenAPI description: no generated
request may produce a server error or a traceback."""

from __future__ import annotations

import urllib.parse

import hypothesis
import pytest
import requests
import schemathesis

from nova_lxd.daemon import openapi
from tests.functional.conftest import cleanup_root, make_engine_root
from tests.functional.daemon.conftest import DaemonProcess


@pytest.fixture(scope="module")
def fuzz_daemon():
    root = make_engine_root("daemon-fuzz-")
    daemon = DaemonProcess(root).start()
    yield daemon
    try:
        daemon.stop()
    finally:
        cleanup_root(root)


def _unix_session(socket_path: str) -> tuple[str, requests.Session]:
    """A plain http:// base URL whose requests go to the unix socket
    (schemathesis joins paths with urljoin, which drops http+unix)."""
    import pylxd.client
    target = "http+unix://" + urllib.parse.quote(socket_path, safe="")

    class Adapter(pylxd.client._UnixAdapter):
        def get_connection(self, url, proxies):
            return super().get_connection(target, proxies)

    session = requests.Session()
    session.mount("http://nlxd", Adapter())
    return "http://nlxd", session


def _operations():
    schema = schemathesis.openapi.from_dict(openapi.document())
    return [result.ok() for result in schema.get_all_operations()]


# schemathesis' pytest plugin does not run on pytest 9: hypothesis drives
# each operation's strategy here instead.
@pytest.mark.parametrize("operation", _operations(),
                         ids=lambda op: f"{op.method.upper()} {op.path}")
def test_no_server_errors(fuzz_daemon, operation):
    if operation.path.endswith(("/websocket", "/events")):
        pytest.skip("websockets: covered by the exec and events tests")
    base, session = _unix_session(str(fuzz_daemon.socket))

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(max_examples=25, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def check(case):
        response = case.call(base_url=base, session=session, timeout=30)
        assert response.status_code < 500, (case.method, case.path,
                                            case.query, response.text)
        assert "Traceback" not in response.text

    check()
