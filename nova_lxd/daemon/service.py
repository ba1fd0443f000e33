"""Running the daemon: the unix socket (0660, root:group), the optional
HTTPS listener, and a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import signal
import socket
import ssl
from pathlib import Path

from aiohttp import web
from oslo_log import log as logging

from nova_lxd.daemon import addresses
from nova_lxd.daemon.app import build_app
from nova_lxd.daemon.auth import tls
from nova_lxd.daemon.context import CONTEXT, Settings
from nova_lxd.engine import fsutil
from nova_lxd.engine.api import Engine

LOG = logging.getLogger(__name__)


def unix_socket(path: Path, group: str) -> socket.socket:
    """A listening socket only root and ``group`` can open: bound under
    a 0077 umask so it is never briefly open to others."""
    fsutil.make_dirs(path.parent, mode=0o711)
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    gid = grp.getgrnam(group).gr_gid if group else 0
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(128)
    return sock


class Daemon:
    def __init__(self, engine: Engine, settings: Settings, *,
                 socket_path: Path, socket_group: str = "",
                 shutdown_timeout: float = 60.0) -> None:
        self.engine = engine
        self.settings = settings
        self.socket_path = socket_path
        self.socket_group = socket_group
        self.shutdown_timeout = shutdown_timeout
        self.runner: web.AppRunner | None = None
        self.stopping = asyncio.Event()

    def _tls(self) -> ssl.SSLContext | None:
        if not self.settings.https_address:
            return None
        cert, key = tls.ensure_server_certificate(self.settings.state_dir)
        self.settings.addresses = addresses.advertised(
            self.settings.https_address)
        pem = cert.read_bytes()
        self.settings.server_certificate = pem.decode()
        self.settings.server_fingerprint = tls.fingerprint_pem(pem)
        return tls.server_context(cert, key)

    async def start(self) -> None:
        # Traversable (the socket's group reaches the socket in it), not
        # listable; every file in it has its own restrictive mode.
        fsutil.make_dirs(self.settings.state_dir, mode=0o711)
        # Uploads and exports of a daemon killed mid-way.
        fsutil.remove_tree(self.settings.state_dir / "uploads")
        ssl_context = self._tls()
        app = build_app(self.engine, self.settings)
        # Handlers still running once operations are drained (a client's
        # long poll) get a few seconds, not aiohttp's default minute.
        self.runner = web.AppRunner(app, handle_signals=False,
                                    access_log=None, shutdown_timeout=5.0)
        await self.runner.setup()
        sock = unix_socket(self.socket_path, self.socket_group)
        await web.SockSite(self.runner, sock).start()
        LOG.info("Listening on %s", self.socket_path)
        if ssl_context is not None:
            host, port = addresses.split_address(self.settings.https_address)
            await web.TCPSite(self.runner, host, port,
                              ssl_context=ssl_context).start()
            LOG.info("Listening on https://%s (certificate %s)",
                     self.settings.https_address,
                     self.settings.server_fingerprint)

    async def stop(self) -> None:
        """Stop accepting, let operations finish (bounded), close."""
        if self.runner is None:
            return
        app = self.runner.app
        for site in list(self.runner.sites):
            await site.stop()
        await app[CONTEXT].operations.drain(self.shutdown_timeout)
        await self.runner.cleanup()
        self.runner = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        await self.start()
        await self.stopping.wait()
        LOG.info("Stopping")
        await self.stop()
