"""OS facts of a rootfs: the distribution from os-release, the
architecture from the ELF header of its init.

Paths are resolved the way the container will see them: a symlink's
absolute target and ``..`` stay inside the rootfs (``resolve``). So a
tenant's ``etc/os-release -> /etc/shadow`` names the image's own
``etc/shadow``, never the host's:

* ``from_tarball`` reads one streaming pass and looks only at what the
  archive holds (symlinks, and the data it kept of likely targets);
* ``from_directory`` (a mounted disk image) opens every component with
  ``O_NOFOLLOW`` from a descriptor of the root, so nothing outside it is
  read, even if the tree changes meanwhile.

Facts are informational (a tenant controls its image, so also what it
says about itself): whatever cannot be found is None, never an error.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.images import extract

INITS = ("sbin/init", "usr/sbin/init", "lib/systemd/systemd",
         "usr/lib/systemd/systemd", "bin/busybox", "bin/sh")
"""Where the init (or, failing that, a shell) is, in order of trust."""
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")

_MAX_OS_RELEASE = 64 * 1024
_ESCAPE = re.compile(r'\\([\\"$`])')
_MAX_VALUE = 255
_ELF_HEAD = 20
_MAX_HOPS = 40
# What one pass over a tarball keeps, at most: ELF architectures of
# executables, symlinks, and *release* files (any of them may turn out to
# be the target of sbin/init or etc/os-release once all links are known).
_MAX_ELVES = 200_000
_MAX_LINKS = 200_000
_MAX_RELEASES = 64

# e_machine -> (32-bit name, 64-bit name); ppc64 is told by byte order.
_MACHINES = {
    3: ("i686", None), 40: ("armv7l", None), 62: (None, "x86_64"),
    183: (None, "aarch64"), 21: (None, "ppc64le"), 22: ("s390", "s390x"),
    243: ("riscv32", "riscv64"), 258: (None, "loongarch64"),
}
_ALIASES = {
    "amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64",
    "arm64": "aarch64", "armhf": "armv7l", "armhfp": "armv7l",
    "armv7": "armv7l", "armv7hl": "armv7l", "armel": "armv7l",
    "i386": "i686", "i486": "i686", "i586": "i686", "386": "i686",
    "x86": "i686", "ppc64el": "ppc64le", "riscv": "riscv64",
}

Lookup = Callable[[str], tuple[str, str | None] | None]
"""What a path inside the rootfs is (its parents being real directories):
``("link", target)``, ``("file", None)``, ``("dir", None)`` or None when
absent."""


@dataclasses.dataclass(frozen=True)
class OsFacts:
    os_id: str | None = None
    """os-release ``ID``: ubuntu, debian, fedora, alpine..."""
    os_version: str | None = None
    """``VERSION_ID``."""
    os_name: str | None = None
    """``PRETTY_NAME`` (or ``NAME``)."""
    architecture: str | None = None
    """Kernel names: x86_64, aarch64, armv7l, i686, ppc64le, s390x..."""

    def to_properties(self) -> dict[str, str]:
        """Under Glance's common property names; unknown facts left out."""
        props = {"os_distro": self.os_id, "os_version": self.os_version,
                 "os_name": self.os_name,
                 "architecture": self.architecture}
        return {k: v for k, v in props.items() if v}


def resolve(path: str, lookup: Lookup) -> str | None:
    """``path`` with every symlink resolved inside the rootfs (absolute
    targets from its root, ``..`` stopping there), or None if a component
    is missing, not a directory, or links loop."""
    todo = _parts(path)[::-1]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        current = "/".join([*done, part])
        found = lookup(current)
        if found is None:
            return None
        kind, target = found
        if kind == "link":
            hops += 1
            if hops > _MAX_HOPS or not target:
                return None
            if target.startswith("/"):
                done = []
            todo.extend(_parts(target)[::-1])
        elif kind != "dir" and todo:
            return None  # a file in the middle of a path
        else:
            done.append(part)
    return "/".join(done)


def normalise_architecture(name: str) -> str:
    """The kernel's name for an architecture (``amd64`` -> ``x86_64``)."""
    name = name.strip().lower()
    return _ALIASES.get(name, name)


def elf_architecture(head: bytes) -> str | None:
    """The architecture of an ELF file starting with ``head`` (its first
    20 bytes), or None if it is no ELF file or an unknown machine."""
    if len(head) < _ELF_HEAD or head[:4] != b"\x7fELF":
        return None
    is64, little = head[4] == 2, head[5] == 1
    machine = int.from_bytes(head[18:20], "little" if little else "big")
    if machine == 21 and not little:
        return "ppc64"
    names = _MACHINES.get(machine)
    if names is None:
        return None
    return names[1] if is64 else names[0]


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): ``KEY=value`` lines, values in shell quoting."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key.replace("_", "").isalnum():
            continue
        value = value.strip()
        if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = _ESCAPE.sub(r"\1", value)
        else:
            value = value.strip("\"'")
        value = "".join(c for c in value if c.isprintable())
        values[key] = value[:_MAX_VALUE]
    return values


def from_directory(root: Path) -> OsFacts:
    """Facts of a mounted or unpacked rootfs at ``root``."""
    tree = _Tree(root)

    def arch_of(path: str) -> str | None:
        return elf_architecture(tree.read(path, _ELF_HEAD) or b"")

    return _facts(tree.lookup, lambda p: tree.read(p, _MAX_OS_RELEASE),
                  arch_of)


def from_directory_lookup(root: Path) -> Lookup:
    """A ``Lookup`` over the tree at ``root``, for ``resolve``."""
    return _Tree(root).lookup


def from_tarball(path: Path, *,
                 max_bytes: int = EngineConfig.max_unpacked_size,
                 max_members: int = EngineConfig.max_image_members
                 ) -> OsFacts:
    """Facts of a rootfs tarball, in one streaming pass that also applies
    the rules of ``extract.scan_rootfs`` (and raises as it does)."""
    collector = TarballCollector()
    extract.scan_rootfs(path, max_bytes=max_bytes, max_members=max_members,
                        observe=collector)
    return collector.facts()


class TarballCollector:
    """An ``extract.Observer`` that keeps what the facts may need, so
    that a scan (``ImageStore.import_tarball(facts=True)``) reads the
    tarball once for both."""

    def __init__(self) -> None:
        self.links: dict[str, str] = {}
        self.elves: dict[str, str] = {}
        self.releases: dict[str, bytes] = {}

    def __call__(self, tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str,
                 kind: str, target: str | None) -> None:
        # A later member replaces an earlier one of the same name.
        self.links.pop(rel, None)
        self.elves.pop(rel, None)
        self.releases.pop(rel, None)
        if kind == "l":
            if len(self.links) < _MAX_LINKS:
                self.links[rel] = m.linkname
        elif kind == "h" and target is not None:
            if target in self.elves:
                self.elves[rel] = self.elves[target]
            if target in self.releases:
                self.releases[rel] = self.releases[target]
        elif kind == "f":
            if ("release" in rel.rpartition("/")[2]
                    and m.size <= _MAX_OS_RELEASE
                    and len(self.releases) < _MAX_RELEASES):
                self.releases[rel] = _read(tar, m, _MAX_OS_RELEASE)
            elif (m.mode & 0o111 and m.size >= _ELF_HEAD
                  and len(self.elves) < _MAX_ELVES):
                arch = elf_architecture(_read(tar, m, _ELF_HEAD))
                if arch is not None:
                    self.elves[rel] = arch

    def facts(self) -> OsFacts:
        def lookup(path: str) -> tuple[str, str | None]:
            target = self.links.get(path)
            return ("dir", None) if target is None else ("link", target)

        return _facts(lookup, self.releases.get, self.elves.get)


def _read(tar: tarfile.TarFile, m: tarfile.TarInfo, limit: int) -> bytes:
    data = tar.extractfile(m)
    return data.read(limit) if data is not None else b""


def _facts(lookup: Lookup, release_of: Callable[[str], bytes | None],
           arch_of: Callable[[str], str | None]) -> OsFacts:
    release: dict[str, str] = {}
    for candidate in OS_RELEASE:
        target = resolve(candidate, lookup)
        data = release_of(target) if target else None
        if data:
            release = parse_os_release(data.decode("utf-8", "replace"))
            break
    arch = None
    for candidate in INITS:
        target = resolve(candidate, lookup)
        if target and (arch := arch_of(target)):
            break
    return OsFacts(os_id=release.get("ID") or None,
                   os_version=release.get("VERSION_ID") or None,
                   os_name=(release.get("PRETTY_NAME")
                            or release.get("NAME") or None),
                   architecture=arch)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Tree:
    """A directory tree read without following any symlink in it: each
    lookup walks down from a descriptor of the root, one ``O_NOFOLLOW``
    component at a time."""

    def __init__(self, root: Path) -> None:
        self.root = os.fspath(root)

    def _parent(self, parts: list[str]) -> int:
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts:
                next_fd = os.open(part, _DIR, dir_fd=fd)
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def lookup(self, path: str) -> tuple[str, str | None] | None:
        parts = _parts(path)
        if not parts:
            return ("dir", None)
        try:
            fd = self._parent(parts[:-1])
        except OSError:
            return None
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                return ("link", os.readlink(parts[-1], dir_fd=fd))
        except OSError:
            return None
        finally:
            os.close(fd)
        return ("dir", None) if stat.S_ISDIR(st.st_mode) else (
            "file", None)

    def read(self, path: str, limit: int) -> bytes | None:
        """Up to ``limit`` bytes of the regular file at ``path`` (a path
        with no symlink in it, as ``resolve`` gives), else None."""
        parts = _parts(path)
        if not parts:
            return None
        try:
            parent = self._parent(parts[:-1])
        except OSError:
            return None
        try:
            # Opening a device node or a fifo may have effects: look first.
            if not stat.S_ISREG(os.stat(parts[-1], dir_fd=parent,
                                        follow_symlinks=False).st_mode):
                return None
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW
                         | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        except OSError:
            return None
        finally:
            os.close(parent)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            chunks, left = [], limit
            while left and (chunk := os.read(fd, left)):
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        except OSError:
            return None
        finally:
            os.close(fd)
