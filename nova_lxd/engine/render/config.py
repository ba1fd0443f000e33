"""Render a container's complete liblxc configuration.

Pure functions: a description in, ``(key, value)`` pairs out, so that the
rules are unit-testable without liblxc. We write a full configuration
rather than ``lxc.include`` Debian's common.conf: that file adds lxcfs
hooks costing ~0.5 s per stop, and we want every key to be ours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from nova_lxd.engine import errors, nics
from nova_lxd.engine.idmap import Idmap
from nova_lxd.engine.nics import Nic

Pairs = list[tuple[str, str]]

# Devices a container may use (cgroup v1 devices controller); unprivileged
# containers cannot create device nodes anyway, but privileged ones could.
_DEVICE_RULES = (
    "c *:* m", "b *:* m",
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
    "c 10:229 rwm",
)


@dataclasses.dataclass(frozen=True)
class ConfigSpec:
    name: str
    rootfs: Path
    console_log: Path
    lxc_log: Path
    idmap: Idmap | None
    idmapped_mount: bool
    halt_signal: str = "SIGPWR"
    console_log_size: int = 1024 * 1024
    log_level: str = "WARN"
    devices_cgroup: str | None = "v1"
    """'v1', 'v2' or None: where the devices controller lives."""
    hostname: str | None = None
    nics: tuple[Nic, ...] = ()
    nesting: bool = False
    binds: tuple[tuple[Path, str], ...] = ()
    """(host directory, path inside) bind mounts, read-write."""
    console: bool = True
    """A console device whose output is logged; False for containers
    CRIU must restore (liblxc cannot restore a console)."""


def render_base(spec: ConfigSpec) -> Pairs:
    pairs: Pairs = [
        ("lxc.uts.name", spec.hostname or spec.name),
        ("lxc.rootfs.path", f"dir:{spec.rootfs}"),
    ]
    if spec.idmap is not None:
        if spec.idmapped_mount:
            pairs.append(("lxc.rootfs.options", "idmap=container"))
        pairs.extend(spec.idmap.lxc_lines())
    pairs += nics.render(spec.nics)
    pairs += [
        ("lxc.autodev", "1"),
        ("lxc.mount.auto", "proc:mixed sys:mixed cgroup:mixed"),
        # No getty ttys: each costs two host ptys (kernel.pty.max).
        ("lxc.tty.max", "0"),
        ("lxc.pty.max", "64"),
        ("lxc.signal.halt", spec.halt_signal),
    ]
    if spec.console:
        pairs += [("lxc.console.logfile", str(spec.console_log)),
                  ("lxc.console.size", str(spec.console_log_size)),
                  ("lxc.console.rotate", "1")]
    else:
        pairs.append(("lxc.console.path", "none"))
    pairs += [
        ("lxc.log.file", str(spec.lxc_log)),
        ("lxc.log.level", spec.log_level),
    ]
    if spec.nesting:
        # What a nested liblxc mounts from: proc and sys without the
        # container's own masking (as LXD's security.nesting does).
        pairs += [("lxc.mount.entry",
                   "proc dev/.lxc/proc proc create=dir,optional 0 0"),
                  ("lxc.mount.entry",
                   "sys dev/.lxc/sys sysfs create=dir,optional 0 0")]
    for source, target in spec.binds:
        if any(c.isspace() for c in f"{source}{target}"):
            raise errors.InvalidInput(
                f"Cannot bind {source} at {target}: mount entries cannot "
                f"hold whitespace.")
        # An idmapped container sees the tree with its own ids only
        # through an idmapped bind mount, like its rootfs.
        idmap = (",idmap=container" if spec.idmap is not None
                 and spec.idmapped_mount else "")
        pairs.append(("lxc.mount.entry",
                      f"{source} {target.lstrip('/')} none "
                      f"bind,create=dir{idmap} 0 0"))
    pairs += render_devices(spec.devices_cgroup)
    return pairs


def render_devices(devices_cgroup: str | None) -> Pairs:
    if devices_cgroup is None:
        return []
    prefix = "lxc.cgroup2" if devices_cgroup == "v2" else "lxc.cgroup"
    return ([(f"{prefix}.devices.deny", "a")]
            + [(f"{prefix}.devices.allow", rule) for rule in _DEVICE_RULES])


def to_text(pairs: Iterable[tuple[str, str]]) -> str:
    """Serialise pairs as a liblxc config file, refusing values that could
    inject further keys."""
    lines = ["# Written by nova-lxd; changes are overwritten."]
    for key, value in pairs:
        value = str(value)
        if "\n" in value or "\r" in value or "\n" in key:
            raise errors.InvalidInput(
                f"Invalid liblxc config value for {key}: line breaks are "
                f"not allowed.")
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"
