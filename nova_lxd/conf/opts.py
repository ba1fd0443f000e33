"""Options for oslo-config-generator (entry point ``oslo.config.opts``).

``tox -e genconfig`` writes etc/nova-lxd/nova-lxd.conf.sample from this.
"""

from __future__ import annotations

from oslo_config import cfg

from nova_lxd.conf import engine


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Every nova-lxd option, as ``[(group name, [options])]``."""
    return engine.list_opts()
