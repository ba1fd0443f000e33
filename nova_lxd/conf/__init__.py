"""oslo.config options of nova-lxd.

Nothing here registers options at import time: whoever owns a
``ConfigOpts`` (the Nova driver, the daemon, a tool) calls
:func:`register_opts` on it, then builds the engine's settings with
:func:`engine_config`.
"""

from __future__ import annotations

from oslo_config import cfg

from nova_lxd.conf import engine, virt
from nova_lxd.conf.engine import engine_config

__all__ = ["engine_config", "register_opts"]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every nova-lxd option group on ``conf``."""
    engine.register_opts(conf)
    virt.register_opts(conf)
