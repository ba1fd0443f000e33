"""Which Nova instance each container belongs to.

Containers are named after ``instance.name`` (a hostname-safe label);
Nova also asks for instance uuids (``list_instance_uuids``, which a
restarted nova-compute uses to refuse an unexpected database). The
engine keeps no foreign metadata, so the driver keeps this small index:
one file per container, named after it, holding the uuid.
"""

from __future__ import annotations

import os
from pathlib import Path

from nova_lxd.engine import fsutil


class InstanceIndex:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def add(self, name: str, uuid: str) -> None:
        fsutil.make_dirs(self.directory, mode=0o700)
        tmp = self.directory / f".{name}.tmp"
        tmp.write_text(uuid)
        os.replace(tmp, self.directory / name)

    def remove(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)

    def uuid(self, name: str) -> str | None:
        try:
            return (self.directory / name).read_text().strip() or None
        except FileNotFoundError:
            return None
