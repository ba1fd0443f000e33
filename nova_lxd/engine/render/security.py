"""Security settings -> liblxc config keys.

Every container, privileged or not, gets the default seccomp policy, the
capability drop and (where the kernel has it) a generated AppArmor
profile: privilege only changes the id mapping, rendered elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from nova_lxd.engine.errors import InvalidInput
from nova_lxd.engine.security import apparmor as aa
from nova_lxd.engine.security import capabilities

Config = list[tuple[str, str]]


def render_security(*, privileged: bool, apparmor: bool,
                    seccomp_profile_path: Path,
                    nesting: bool = False) -> Config:
    """The seccomp, capability and AppArmor keys for one container.

    ``seccomp_profile_path`` must hold the policy (see
    ``security.seccomp.write_profile``); liblxc refuses to start the
    container when it is missing, which is what we want.
    """
    path = str(seccomp_profile_path)
    if not Path(path).is_absolute() or "\n" in path or "\r" in path:
        raise InvalidInput(f"Seccomp profile path {path!r} must be an "
                           f"absolute path on one line.")
    out: Config = [("lxc.seccomp.profile", path),
                   ("lxc.cap.drop", capabilities.cap_drop())]
    out += aa.apparmor_config(apparmor, privileged=privileged,
                              nesting=nesting)
    return out
