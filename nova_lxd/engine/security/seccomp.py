"""The default seccomp policy every container gets (privileged too).

A liblxc version-2 denylist modelled on LXD/Incus' default
(``security.syscalls.deny_default``): syscalls that load kernel code or
reach files by handle outside the container fail with ENOSYS (38), which
programs treat as "not available here" rather than as an error to
retry; forced unmounts are refused.
"""

from __future__ import annotations

from pathlib import Path

from nova_lxd.engine import fsutil

ENOSYS = 38

DENIED_SYSCALLS = (
    # As LXD and Incus:
    "kexec_load",
    "open_by_handle_at",  # escapes a bind mount by file handle
    "init_module",
    "finit_module",
    "delete_module",
    # Beyond LXD: the fd-based twin of kexec_load. A privileged container
    # keeps CAP_SYS_BOOT (its reboot needs it), so block the call itself.
    "kexec_file_load",
)


def profile_text() -> str:
    """The policy text, in liblxc's seccomp v2 format."""
    lines = ["2", "denylist", "[all]",
             # umount2(MNT_FORCE) -> EACCES; may disrupt host mounts.
             "reject_force_umount",
             "[all]"]
    lines += [f"{name} errno {ENOSYS}" for name in DENIED_SYSCALLS]
    return "\n".join(lines) + "\n"


def write_profile(path: Path) -> None:
    """Write the default policy for ``lxc.seccomp.profile`` to use."""
    fsutil.write_atomic(Path(path), profile_text().encode(), mode=0o600)
