"""``remove_containers.py ENGINE_ROOT``: kill and delete every container
of an engine root (DevStack's clean, the one-host cloud's purge)."""

from __future__ import annotations

import sys
from pathlib import Path

from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    engine = Engine(EngineConfig(root=Path(args[0])), recover=True)
    for record in engine.list():
        engine.delete(record.name, force=True)
        print(f"deleted {record.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
