"""``nlxd``: the engine's REST API daemon, in the foreground.

    nlxd --config-file /etc/nova-lxd/nova-lxd.conf
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

from oslo_config import cfg
from oslo_log import log as logging

from nova_lxd import conf
from nova_lxd.conf import daemon as daemon_conf
from nova_lxd.daemon.context import Settings
from nova_lxd.daemon.service import Daemon
from nova_lxd.engine.api import Engine

LOG = logging.getLogger(__name__)


def build(config: cfg.ConfigOpts) -> Daemon:
    """The daemon as configured; the engine recovers interrupted
    operations (say, after a SIGKILL) as it opens its root."""
    engine_config = conf.engine_config(config)
    group = config.daemon
    state_dir = Path(group.state_dir or engine_config.root / "daemon")
    settings = Settings(state_dir=state_dir,
                        max_body_size=group.max_body_size,
                        max_upload_size=group.max_upload_size,
                        trust_token_ttl=group.trust_token_ttl,
                        https_address=group.https_address)
    engine = Engine(engine_config)
    return Daemon(engine, settings,
                  socket_path=Path(group.socket_path
                                   or state_dir / "unix.socket"),
                  socket_group=group.socket_group,
                  shutdown_timeout=group.shutdown_timeout)


def main(argv: list[str] | None = None) -> int:
    config = cfg.ConfigOpts()
    conf.register_opts(config)
    daemon_conf.register_opts(config)
    logging.register_options(config)
    config(sys.argv[1:] if argv is None else argv, project="nova-lxd",
           prog="nlxd")
    logging.setup(config, "nlxd")
    if os.geteuid() != 0:
        LOG.error("nlxd runs containers and must run as root")
        return 1
    daemon = build(config)
    problems = daemon.engine.host_problems()
    for problem in problems:
        LOG.warning("Host problem: %s", problem)
    asyncio.run(daemon.serve_forever())
    busy = _busy_workers(grace=1.0)
    if busy:
        # Engine calls that outlived [daemon] shutdown_timeout: exit
        # anyway, as a SIGKILL would; the engine recovers their work
        # on its next start.
        LOG.warning("Exiting with %d engine calls still running",
                    len(busy))
        logging_flush()
        os._exit(0)
    return 0


def _busy_workers(grace: float) -> list[str]:
    """Worker threads still running after ``grace`` s (idle ones end at
    once once the pool is shut down)."""
    deadline = time.monotonic() + grace
    workers = [t for t in threading.enumerate()
               if t.name.startswith("nlxd-op")]
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in workers if t.is_alive()]


def logging_flush() -> None:
    import logging as std_logging
    for handler in std_logging.getLogger().handlers:
        handler.flush()


if __name__ == "__main__":
    sys.exit(main())
