"""nlxd: the engine served as LXD's 1.0 REST API (unix socket, HTTPS).

Depends on the engine and ``nova_lxd.conf`` only; the engine never
imports this package.
"""
