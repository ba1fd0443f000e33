"""Name rules shared by containers, snapshots and image aliases."""

from __future__ import annotations

import re

from nova_lxd.engine import errors

_HOSTNAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")


def validate_container_name(name: object) -> str:
    """Container names double as hostnames and directory names: keep them
    to RFC 1123 labels (as LXD does), so neither can be abused."""
    if not isinstance(name, str) or not name:
        raise errors.InvalidName(name=name, reason="a name is required")
    if len(name) > 63:
        raise errors.InvalidName(name=name, reason="longer than 63 "
                                                   "characters")
    if not _HOSTNAME.match(name):
        raise errors.InvalidName(
            name=name, reason="it contains characters other than letters, "
                              "digits and hyphens, or does not start with "
                              "a letter")
    if name.endswith("-"):
        raise errors.InvalidName(name=name, reason="it ends with a hyphen")
    return name
