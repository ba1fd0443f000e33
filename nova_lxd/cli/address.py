"""``[REMOTE:]NAME`` and ``[REMOTE:]NAME/PATH`` addressing, as in lxc.

A prefix before the first ``:`` names a remote only when such a remote
exists (``lxc`` does the same), so a plain name never needs quoting.
"""

from __future__ import annotations

from dataclasses import dataclass

from nova_lxd.cli.config import Config
from nova_lxd.cli.errors import CliError


@dataclass(frozen=True)
class Target:
    """A remote and an optional object name on it."""

    remote: str
    name: str


def parse(config: Config, text: str) -> Target:
    """``remote:name`` -> Target; ``name`` -> the default remote's."""
    if ":" in text:
        remote, _, name = text.partition(":")
        if remote in config.remotes:
            return Target(remote, name)
        raise CliError(f"remote {remote!r} does not exist "
                       f"(see 'nlxc remote list')")
    return Target(config.default_remote, text)


def parse_name(config: Config, text: str) -> Target:
    """Like :func:`parse`, but the name is required."""
    target = parse(config, text)
    if not target.name:
        raise CliError(f"{text!r}: an instance name is required")
    if "/" in target.name:
        raise CliError(f"{target.name!r}: '/' is not allowed in a name")
    return target


def parse_file(config: Config, text: str) -> tuple[Target, str]:
    """``[remote:]name/path`` -> (Target, absolute path in the
    instance)."""
    target = parse(config, text)
    name, sep, path = target.name.partition("/")
    if not name or not sep or not path:
        raise CliError(f"{text!r}: expected INSTANCE/PATH")
    return Target(target.remote, name), "/" + path.lstrip("/")


def split_snapshot(name: str) -> tuple[str, str | None]:
    """``c1/snap0`` -> ("c1", "snap0"); ``c1`` -> ("c1", None)."""
    base, sep, snap = name.partition("/")
    return base, (snap if sep else None)
