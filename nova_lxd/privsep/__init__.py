"""The privilege boundary: nova-compute runs unprivileged, and everything
the engine does as root (unpacking images, mounting disks, starting
containers with lxc-start) runs in this context's daemon instead.

The daemon is a separate process started through ``privsep-helper``
(sudo/rootwrap), not a fork of nova-compute: containers and image mounts
are started from it, never by forking the large, multi-threaded
nova-compute.
"""

from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

engine_context = priv_context.PrivContext(
    "nova_lxd",
    cfg_section="nova_lxd_privileged",
    pypath=__name__ + ".engine_context",
    capabilities=[
        caps.CAP_SYS_ADMIN,      # mounts, namespaces, cgroups
        caps.CAP_DAC_OVERRIDE,   # container trees owned by mapped ids
        caps.CAP_DAC_READ_SEARCH,
        caps.CAP_FOWNER,
        caps.CAP_CHOWN,          # image owners, chown-shift fallback
        caps.CAP_SETUID,         # id maps (newuidmap) and attach
        caps.CAP_SETGID,
        caps.CAP_SETPCAP,
        caps.CAP_KILL,           # stopping containers
        caps.CAP_NET_ADMIN,      # container network namespaces
        caps.CAP_SYS_PTRACE,     # liblxc attach reads /proc of init
        caps.CAP_MKNOD,
        caps.CAP_SYS_CHROOT,
        caps.CAP_AUDIT_WRITE,
        caps.CAP_SYS_NICE,
    ],
)
