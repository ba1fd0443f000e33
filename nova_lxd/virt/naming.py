"""Container names for Nova instances."""

from __future__ import annotations

import re
from typing import Any

_UNSAFE = re.compile(r"[^a-z0-9-]+")


def container_name(instance: Any) -> str:
    """``instance.name`` made a valid container name (an RFC 1123 label,
    the engine's rule). The default template, ``instance-%08x``, passes
    unchanged; templates with uuids or underscores are folded."""
    name = _UNSAFE.sub("-", instance.name.lower()).strip("-")
    if not name[:1].isalpha():
        name = "i-" + name
    return name[:63].rstrip("-")
