"""AppArmor for containers, or one clear warning when there is none.

With AppArmor, liblxc generates a profile per container (what LXD does)
and nesting stays off. Without it, liblxc silently falls back to its
``nop`` LSM, so we say once per process what that means.
"""

from __future__ import annotations

import threading

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

PROFILE = "generated"
UNAVAILABLE = ("AppArmor is not available in this kernel: containers run "
               "without an LSM profile; seccomp, capabilities and user "
               "namespaces still apply")
PRIVILEGED_UNCONFINED = ("Privileged containers run without an LSM "
                         "profile here: their root is host root, kept in "
                         "only by seccomp, dropped capabilities and "
                         "namespaces")

_warned: set[str] = set()
_lock = threading.Lock()


def _warn_once(message: str) -> None:
    with _lock:
        if message in _warned:
            return
        _warned.add(message)
    LOG.warning(message)


def warn_unavailable(*, privileged: bool = False) -> None:
    """Say, once per process, what running without AppArmor means."""
    _warn_once(UNAVAILABLE)
    if privileged:
        _warn_once(PRIVILEGED_UNCONFINED)


def reset_warnings() -> None:
    """Warn again (tests)."""
    with _lock:
        _warned.clear()


def apparmor_config(enabled: bool, *, privileged: bool = False,
                    nesting: bool = False) -> list[tuple[str, str]]:
    """liblxc AppArmor keys; nothing (and a warning) without AppArmor.
    ``nesting`` lets liblxc stack the nested containers' profiles."""
    if enabled:
        return [("lxc.apparmor.profile", PROFILE),
                ("lxc.apparmor.allow_nesting", "1" if nesting else "0")]
    warn_unavailable(privileged=privileged)
    return []
