"""A tiny LXD-shaped HTTP server for the client's unit tests: on a unix
socket (or TLS over TCP), answering from a table of canned responses and
recording what it was sent."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit


def sync(metadata, status=200, headers=None):
    return (status, {"type": "sync", "status": "Success",
                     "status_code": 200, "metadata": metadata},
            headers or {})


def error(message, status):
    return (status, {"type": "error", "error": message,
                     "error_code": status, "metadata": None}, {})


def async_(op_id, status=202):
    op = {"id": op_id, "class": "task", "status": "Running",
          "status_code": 103, "metadata": None}
    return (status, {"type": "async", "status_code": 100,
                     "operation": f"/1.0/operations/{op_id}",
                     "metadata": op},
            {"Location": f"/1.0/operations/{op_id}"})


def operation(op_id, status_code=200, metadata=None, err=""):
    return sync({"id": op_id, "class": "task", "status_code": status_code,
                 "status": "Success" if status_code == 200 else "Failure",
                 "metadata": metadata, "err": err})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _any(self):
        server = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        server.requests.append({"method": self.command, "path": self.path,
                                "headers": dict(self.headers),
                                "body": body})
        answer = server.routes.get((self.command, path))
        if answer is None:
            answer = error("not found", 404)
        if callable(answer):
            answer = answer(self, body)
        status, payload, headers = answer
        data = payload if isinstance(payload, bytes) else json.dumps(
            payload).encode()
        self.send_response(status)
        ctype = ("application/octet-stream" if isinstance(payload, bytes)
                 else "application/json")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        sock, _ = super().get_request()
        return sock, ("local", 0)


class _TLSServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, context):
        self.context = context
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = super().get_request()
        tls = self.context.wrap_socket(sock, server_side=True)
        self.peer_certs.append(tls.getpeercert(binary_form=True))
        return tls, addr


class FakeServer:
    """Start with :meth:`unix` or :meth:`tls`; fill ``routes``."""

    def __init__(self) -> None:
        self.routes: dict = {("GET", "/1.0"): sync(
            {"api_version": "1.0", "auth": "trusted",
             "environment": {"server_version": "fake"}})}
        self.requests: list[dict] = []
        self.server = None
        self.socket_path: str | None = None
        self.port = 0

    @classmethod
    def unix(cls, directory: Path) -> FakeServer:
        fake = cls()
        fake.socket_path = os.path.join(directory, "fake.sock")
        fake.server = _UnixServer(fake.socket_path, _Handler)
        fake._serve()
        return fake

    @classmethod
    def tls(cls, cert: Path, key: Path,
            client_ca: Path | None = None) -> FakeServer:
        """HTTPS on 127.0.0.1; with ``client_ca``, the server asks for
        a client certificate signed by it (a self-signed client
        certificate is its own CA)."""
        fake = cls()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.verify_mode = ssl.CERT_NONE
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(client_ca)
        fake.server = _TLSServer(("127.0.0.1", 0), _Handler, ctx)
        fake.server.peer_certs = []
        fake.port = fake.server.server_address[1]
        fake._serve()
        return fake

    @property
    def peer_certs(self) -> list:
        return self.server.peer_certs

    def _serve(self) -> None:
        self.server.fake = self
        threading.Thread(target=self.server.serve_forever, args=(0.05,),
                         daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
