"""Name rules shared by containers, snapshots and image aliases."""

from __future__ import annotations

import re

from nova_lxd.engine import errors

_HOSTNAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
_META_KEY = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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


def validate_hostname(hostname: object) -> str:
    """A hostname is one or more dot-separated labels, 253 bytes at most
    (nova allows FQDNs from API 2.94 on)."""
    if not isinstance(hostname, str) or not 0 < len(hostname) <= 253:
        raise errors.InvalidConfig(key="hostname",
                                   reason="1-253 characters are required")
    for label in hostname.split("."):
        if not (_LABEL.match(label) and not label.endswith("-")):
            raise errors.InvalidConfig(
                key="hostname",
                reason=f"{hostname!r} is not a host name (labels of letters,"
                       " digits and inner hyphens, separated by dots)")
    return hostname


def validate_metadata(metadata: object) -> dict[str, str]:
    """The caller's keys: printable names, string values, kept small
    because they live in every record read."""
    if not isinstance(metadata, dict):
        raise errors.InvalidConfig(key="metadata", reason="a mapping of "
                                   "strings is required")
    for key, value in metadata.items():
        if not (isinstance(key, str) and _META_KEY.match(key)):
            raise errors.InvalidConfig(
                key=repr(key), reason="keys are 1-64 letters, digits, "
                                      "'.', '_' or '-'")
        if not isinstance(value, str) or len(value) > 4096:
            raise errors.InvalidConfig(
                key=key, reason="values are strings of 4096 characters "
                                "at most")
    return dict(metadata)


_SNAPSHOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def validate_snapshot_name(name: object) -> str:
    """Snapshot names are directory and subvolume names: 1-63 letters,
    digits, '.', '_' and '-', not starting with a dot or a hyphen."""
    if not isinstance(name, str) or not _SNAPSHOT.match(name):
        raise errors.InvalidName(
            f"Invalid snapshot name {name!r}: use 1-63 letters, digits, "
            f"'.', '_' or '-', starting with a letter or a digit.")
    return name
