"""``nlxc``'s subcommands, one module per resource. Each module has a
``register(subparsers)`` that adds its parsers with ``func`` set to a
handler ``(Context, Namespace) -> int`` (the exit status)."""

from __future__ import annotations

from nova_lxd.cli.commands import (
    execute,
    files,
    images,
    instances,
    migrate,
    remotes,
    snapshots,
    trust,
)

MODULES = (instances, migrate, execute, files, snapshots, images, remotes,
           trust)
