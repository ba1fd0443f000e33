"""Options of the ``nlxd`` daemon, group ``[daemon]``.

Registered only by the daemon (``nova_lxd.cmd.daemon``): the Nova driver
never sees them. Empty paths default to places under the engine's root
so that one ``[lxc] root`` moves everything.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = cfg.OptGroup(
    "daemon",
    title="nlxd daemon options",
    help="The LXD-compatible REST API over a unix socket and HTTPS.",
)

DAEMON_OPTS = [
    cfg.StrOpt(
        "socket_path",
        default="",
        help="""
Unix socket of the local API. Empty: ``unix.socket`` in the daemon's
state directory. Everyone who can open it (root and ``socket_group``) is
trusted with the whole API.
"""),
    cfg.StrOpt(
        "socket_group",
        default="",
        help="""
Group owning the unix socket (mode 0660). Empty: root's own group, so
that only root can use the local API.
"""),
    cfg.StrOpt(
        "state_dir",
        default="",
        help="""
Directory of the daemon's own state: its TLS certificate and key, the
trust store of client certificates and pending trust tokens. Empty:
``daemon`` under the engine's root (``[lxc] root``).
"""),
    cfg.StrOpt(
        "https_address",
        default="",
        help="""
``host:port`` on which the API is served over HTTPS (TLS 1.2 at least,
clients authenticated by certificate). Empty: no network API at all.
"""),
    cfg.IntOpt(
        "max_body_size",
        default=1024 * 1024,
        min=1024,
        help="""
Largest JSON request body in bytes; larger requests are refused with
413 before they are read.
"""),
    cfg.IntOpt(
        "max_upload_size",
        default=8 * 1024 ** 3,
        min=1024,
        help="""
Largest image upload in bytes (``POST /1.0/images``). File pushes are
bounded by the engine's own file size limit.
"""),
    cfg.FloatOpt(
        "shutdown_timeout",
        default=60.0,
        min=0,
        help="""
Seconds the daemon waits on SIGTERM for running operations to finish
before it cancels what can be cancelled and exits.
"""),
    cfg.IntOpt(
        "trust_token_ttl",
        default=3600,
        min=10,
        help="Seconds a trust token stays valid (tokens are single use).",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[daemon]`` options on ``conf``."""
    conf.register_group(GROUP)
    conf.register_opts(DAEMON_OPTS, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP.name, DAEMON_OPTS)]
