"""Options of the Nova driver, in the same ``[lxc]`` group as the engine's.

They say what flavors may ask for: switches that weaken a container's
isolation are the operator's decision, never a tenant's.
"""

from __future__ import annotations

from oslo_config import cfg

from nova_lxd.conf.engine import GROUP

VIRT_OPTS = [
    cfg.BoolOpt(
        "allow_privileged_flavors",
        default=False,
        help="""
Let flavors with the extra spec ``lxc:privileged=true`` boot privileged
containers (no user-namespace id map: root inside is root on the host,
kept in check only by seccomp, dropped capabilities and AppArmor where the
kernel has it). Leave off unless every user of such flavors is trusted
with the host.
"""),
    cfg.BoolOpt(
        "allow_nesting_flavors",
        default=False,
        help="""
Let flavors with ``lxc:nesting=true`` boot containers that can run
containers of their own (proc and sys mounted unmasked under /dev/.lxc for
the nested liblxc; AppArmor profile stacking where the kernel has
AppArmor). The container stays unprivileged, but its tenant gets more of
the kernel's surface. Nested unprivileged containers need ids of their
own: raise ``idmap_size`` for such hosts.
"""),
    cfg.BoolOpt(
        "allow_shared_idmap_flavors",
        default=False,
        help="""
Let flavors with ``lxc:isolated_idmap=false`` boot containers that share
one id range (as LXD's ``security.idmap.isolated=false``): root in one of
them is the same host uid as root in the others, so a process escaping
one owns the files of all of them. Isolated ranges are the default.
"""),
    cfg.StrOpt(
        "daemon_socket",
        default="",
        help="""
Unix socket of this host's ``nlxd``, through which instances move to and
from other hosts (cold migration, resize to another host). nova-compute
must be able to open it (``[daemon] socket_group``), and the hosts'
daemons must serve HTTPS and trust each other's certificates. Empty:
``daemon/unix.socket`` under ``[lxc] root``, the daemon's default.
"""),
    cfg.StrOpt(
        "image_download_dir",
        help="""
Where nova-compute, unprivileged, writes Glance images while it downloads
them, before the engine (root, through privsep) converts them into its
store. Default: ``nova-lxd-downloads`` under ``[DEFAULT] instances_path``.
Partial downloads are removed when the service starts.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(GROUP)
    conf.register_opts(VIRT_OPTS, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP.name, VIRT_OPTS)]
