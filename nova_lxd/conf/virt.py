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
