"""Isolated id maps: one private uid/gid range per unprivileged container.

Each container maps its ids 0..size-1 onto a host range no other container
uses, so a process escaping one container owns nothing in another (LXD's
``security.idmap.isolated``). Ranges come from the subordinate ids of one
host user (/etc/subuid, /etc/subgid): with ``uidmap`` installed liblxc
writes the maps through newuidmap, which refuses ids outside them.
"""

from __future__ import annotations

import dataclasses
import pwd
from collections.abc import Iterable, Sequence
from pathlib import Path

from oslo_log import log as logging

from nova_lxd.engine import errors

LOG = logging.getLogger(__name__)

DEFAULT_SIZE = 65536


@dataclasses.dataclass(frozen=True, order=True)
class IdRange:
    """``count`` consecutive host ids from ``start``."""

    start: int
    count: int

    @property
    def end(self) -> int:
        """One past the last id (half-open interval)."""
        return self.start + self.count

    def __str__(self) -> str:
        return f"{self.start}-{self.end - 1}"


def read_subordinate_ranges(path: Path, user: str) -> list[IdRange]:
    """The ranges of ``user`` in a subuid/subgid file, in file order.

    Lines are ``owner:start:count`` where owner is the user's name or its
    numeric uid (shadow accepts both). Comments, blank and malformed lines
    are skipped: the file is shared with other tools and one bad line must
    not take every container down. A missing file means no ranges.
    """
    owners = {user}
    try:
        owners.add(str(pwd.getpwnam(user).pw_uid))
    except KeyError:
        LOG.debug("User %s is not in the password database; matching "
                  "%s by name only", user, path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        LOG.debug("Subordinate id file %s does not exist", path)
        return []
    ranges = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 3:
            LOG.debug("%s:%d: ignoring malformed line %r", path, lineno, raw)
            continue
        owner, start, count = fields
        if owner not in owners:
            continue
        try:
            rng = IdRange(int(start), int(count))
        except ValueError:
            LOG.debug("%s:%d: ignoring malformed line %r", path, lineno, raw)
            continue
        if rng.start < 0 or rng.count <= 0:
            LOG.debug("%s:%d: ignoring empty range %r", path, lineno, raw)
            continue
        ranges.append(rng)
    return ranges


@dataclasses.dataclass(frozen=True)
class Idmap:
    """Container ids 0..size-1 map to host ``uid_base``/``gid_base`` on."""

    uid_base: int
    gid_base: int
    size: int = DEFAULT_SIZE

    def __post_init__(self) -> None:
        if self.size < 1 or self.uid_base < 0 or self.gid_base < 0:
            raise errors.InvalidInput(f"Invalid id map {self!r}: bases "
                                      f"must be >= 0 and size >= 1.")

    def lxc_lines(self) -> list[tuple[str, str]]:
        """liblxc ``lxc.idmap`` entries for this map."""
        return [("lxc.idmap", f"u 0 {self.uid_base} {self.size}"),
                ("lxc.idmap", f"g 0 {self.gid_base} {self.size}")]

    def host_uid(self, container_uid: int) -> int:
        """The host uid that owns files of ``container_uid``."""
        return self.uid_base + self._check(container_uid, "uid")

    def host_gid(self, container_gid: int) -> int:
        """The host gid that owns files of ``container_gid``."""
        return self.gid_base + self._check(container_gid, "gid")

    def _check(self, cid: int, kind: str) -> int:
        if not 0 <= cid < self.size:
            raise errors.InvalidInput(
                f"Container {kind} {cid} is outside the id map "
                f"(0-{self.size - 1}).")
        return cid

    @property
    def uid_range(self) -> IdRange:
        return IdRange(self.uid_base, self.size)

    @property
    def gid_range(self) -> IdRange:
        return IdRange(self.gid_base, self.size)


def _merge(ranges: Iterable[IdRange]) -> list[IdRange]:
    """Sorted, with overlapping and adjacent ranges joined: newuidmap
    accepts a map spanning adjacent subordinate ranges."""
    merged: list[IdRange] = []
    for rng in sorted(r for r in ranges if r.count > 0):
        if merged and rng.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = IdRange(last.start,
                                 max(last.end, rng.end) - last.start)
        else:
            merged.append(rng)
    return merged


def _intersect(a: Sequence[IdRange], b: Sequence[IdRange]) -> list[IdRange]:
    """Ids in both sorted, merged lists (a linear two-pointer walk)."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo = max(a[i].start, b[j].start)
        hi = min(a[i].end, b[j].end)
        if lo < hi:
            out.append(IdRange(lo, hi - lo))
        if a[i].end < b[j].end:
            i += 1
        else:
            j += 1
    return out


def _describe(ranges: Sequence[IdRange]) -> str:
    return ", ".join(str(r) for r in ranges) or "none"


def allocate(uid_ranges: Iterable[IdRange], gid_ranges: Iterable[IdRange],
             used: Iterable[Idmap], size: int = DEFAULT_SIZE, *,
             user: str = "root",
             subuid_path: Path = Path("/etc/subuid"),
             subgid_path: Path = Path("/etc/subgid")) -> Idmap:
    """The lowest free isolated map of ``size`` ids.

    The map uses the same base for uids and gids; it lies inside a
    subordinate uid range and a subordinate gid range, starts at a
    multiple of ``size`` from the start of that (merged) range, and
    overlaps neither side of any map in ``used`` (a hole left by a
    deleted container is reused). Sorting the used maps dominates:
    O(n log n) for n used maps. ``user`` and the paths only make the
    error messages actionable.
    """
    if size < 1:
        raise errors.InvalidInput(f"Id map size must be >= 1, not {size}.")
    uids, gids = _merge(uid_ranges), _merge(gid_ranges)
    for kind, ranges, path in (("uid", uids, subuid_path),
                               ("gid", gids, subgid_path)):
        if not ranges:
            raise errors.SubordinateIdsMissing(user=user, kind=kind,
                                               path=path)
    allowed = [r for r in _intersect(uids, gids) if r.count >= size]
    if not allowed:
        raise errors.SubordinateIdsMissing(
            f"The subordinate ids of {user} (uids {_describe(uids)} in "
            f"{subuid_path}, gids {_describe(gids)} in {subgid_path}) hold "
            f"no common range of {size} ids: give {user} the same range "
            f"in both files, e.g. '{user}:1000000:1000000000'.",
            user=user, kind="uid/gid", path=subuid_path)

    busy = _merge(r for m in used for r in (m.uid_range, m.gid_range))
    k = 0  # first busy range that may still matter; only moves forward
    for rng in allowed:
        base = rng.start
        while base + size <= rng.end:
            while k < len(busy) and busy[k].end <= base:
                k += 1
            if k == len(busy) or busy[k].start >= base + size:
                LOG.debug("Allocated id map base %d size %d", base, size)
                return Idmap(base, base, size)
            # Jump past the blocking range, keeping the alignment.
            steps = -(-(busy[k].end - rng.start) // size)
            base = rng.start + steps * size
    raise errors.IdmapExhausted(size=size, user=user,
                                ranges=_describe(allowed))


def claim(wanted: Idmap, uid_ranges: Iterable[IdRange],
          gid_ranges: Iterable[IdRange], used: Iterable[Idmap]) -> str | None:
    """Why ``wanted`` cannot be this host's map for one more container
    (None: it can): outside the subordinate ranges, or overlapping a map
    in ``used``."""
    for kind, ranges, own in (("uid", _merge(uid_ranges), wanted.uid_range),
                              ("gid", _merge(gid_ranges), wanted.gid_range)):
        if not any(r.start <= own.start and own.end <= r.end
                   for r in ranges):
            return (f"its {kind}s {own} are outside this host's "
                    f"subordinate {kind}s ({_describe(ranges)})")
    for other in used:
        for mine, theirs in ((wanted.uid_range, other.uid_range),
                             (wanted.gid_range, other.gid_range)):
            if mine.start < theirs.end and theirs.start < mine.end:
                return f"ids {mine} are another container's here"
    return None
