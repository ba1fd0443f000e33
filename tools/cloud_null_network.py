"""A read-only network API that knows no ports: the one-host cloud's
stand-in for Neutron until the issue that brings Neutron.

Servers boot with ``--nic none`` and nova never asks the network service
to allocate anything; but nova 34 still lists an instance's ports when
it deletes, reboots, rebuilds or heals its network cache. This answers
every ``GET /v2.0/<collection>`` with an empty collection (so nova finds
no ports, networks or extensions), ``GET /`` with the API version, and
refuses anything that would change state. Listens on 127.0.0.1 only.

``python cloud_null_network.py PORT``
"""

from __future__ import annotations

import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

VERSIONS = {"versions": [{"id": "v2.0", "status": "CURRENT",
                          "links": []}]}


class Handler(BaseHTTPRequestHandler):
    server_version = "nova-lxd-null-network/1"

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if not parts:
            self._reply(HTTPStatus.OK, VERSIONS)
        elif parts[0] == "v2.0" and len(parts) == 2:
            collection = parts[1].removesuffix(".json")
            self._reply(HTTPStatus.OK, {collection.replace("-", "_"): []})
        else:
            self._reply(HTTPStatus.NOT_FOUND,
                        {"NeutronError": {"message": "no such resource"}})

    def _refuse(self) -> None:
        self._reply(HTTPStatus.CONFLICT, {"NeutronError": {
            "message": "this cloud has no network service (boot with "
                       "--nic none)"}})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {fmt % args}\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    port = int(args[0]) if args else 9696
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
