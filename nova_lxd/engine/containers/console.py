"""The console log: what the container's init and services wrote to
/dev/console, captured by liblxc in ``console.log`` and rotated by it
into ``console.log.1`` once ``lxc.console.size`` is reached."""

from __future__ import annotations

from pathlib import Path


def read_console_log(log: Path, max_bytes: int = 1024 * 1024) -> str:
    """The newest ``max_bytes`` of the log, across the rotated file."""
    chunks: list[bytes] = []
    remaining = max_bytes
    for path in (log, log.with_name(log.name + ".1")):
        if remaining <= 0:
            break
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - remaining))
                data = f.read(remaining)
        except FileNotFoundError:
            continue
        chunks.insert(0, data)
        remaining -= len(data)
    return b"".join(chunks).decode("utf-8", errors="replace")
