"""Capabilities dropped from every container (privileged too).

The same set as LXD drops from privileged containers: loading kernel
modules, raw I/O ports and memory, the host clock, and the MAC policy.
In an unprivileged container these already fail (they are checked
against the host user namespace); dropping them anyway costs nothing
and keeps the two kinds of container alike.
"""

from __future__ import annotations

DROPPED = ("mac_admin", "mac_override", "sys_module", "sys_rawio",
           "sys_time")


def cap_drop() -> str:
    """The ``lxc.cap.drop`` value."""
    return " ".join(DROPPED)
