"""Options for oslo-config-generator (entry point ``oslo.config.opts``).

``tox -e genconfig`` writes etc/nova-lxd/nova-lxd.conf.sample from this.
"""

from __future__ import annotations

from oslo_config import cfg

from nova_lxd.conf import daemon, engine, virt


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Every nova-lxd option, as ``[(group name, [options])]``."""
    engine_opts = dict(engine.list_opts())
    for group, opts in virt.list_opts():
        engine_opts[group] = engine_opts.get(group, []) + opts
    return list(engine_opts.items()) + daemon.list_opts()
