"""LXD unified tarballs into plain rootfs tarballs, in one streaming pass.

A unified tarball holds ``metadata.yaml``, ``rootfs/`` and ``templates/``
at its top level. ``repack`` reads it once, with nothing extracted to
disk: members under ``rootfs/`` are re-rooted to ``./`` and written to a
tar compressed with multi-threaded zstd; ``metadata.yaml`` and the
template files are read into memory (both bounded) and returned.

It is an ``extract.Scan``: every member, inside ``rootfs/`` or not, goes
through the rules of ``extract_rootfs`` (names, links, owners, sizes,
member count) before anything is written, so the output holds only what
an extraction would make; fifos and device nodes are left out.

``metadata.yaml`` is read as LXD reads it: every scalar a string (Go
unmarshals ``release: 20.10`` into "20.10", where YAML's implicit typing
would give the float 20.1), with no aliases (a "billion laughs" document
is refused rather than expanded), then checked: ``architecture`` and
``creation_date`` are required, as LXD requires them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tarfile
from pathlib import Path
from typing import Any

import yaml

from nova_lxd.engine import errors
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.images import extract, facts, transcode

MAX_METADATA = 1024 * 1024
"""Bytes of metadata.yaml."""
MAX_TEMPLATES = 1024 * 1024
"""Bytes of all the files under templates/ together."""
_MAX_RULES = 256
_MAX_SCALAR = 4096
_PREFIX = "rootfs"
_XATTRS = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")
_WHEN = ("create", "copy", "start", "rename")


@dataclasses.dataclass(frozen=True)
class UnifiedMetadata:
    architecture: str
    """Normalised to the kernel's name (``amd64`` -> ``x86_64``)."""
    creation_date: int
    """Seconds since the epoch."""
    properties: dict[str, str]
    """metadata.yaml's ``properties``: os, release, description..."""
    templates: dict[str, dict[str, Any]]
    """metadata.yaml's template rules by path in the container, each
    ``{"when": [...], "template": name, "create_only": bool,
    "properties": {...}, "content": text of templates/<name>}``."""


def repack(source: Path, out: Path, *,
           max_bytes: int = EngineConfig.max_unpacked_size,
           max_members: int = EngineConfig.max_image_members
           ) -> UnifiedMetadata:
    """Write the ``rootfs/`` of the unified tarball ``source`` (any
    supported compression) to ``out`` as a zstd rootfs tarball, and return
    its metadata. Raises what ``extract.scan_rootfs`` raises, and
    ``InvalidImage`` for missing or bad metadata; ``out`` is removed on
    failure."""
    source, out = Path(source), Path(out)
    try:
        with transcode.open_compressed(out, "zst") as sink, \
                tarfile.open(fileobj=sink, mode="w|",
                             format=tarfile.PAX_FORMAT) as dest:
            walk = _Repack(source, dest, max_bytes, max_members)
            walk.run()
        return walk.result()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        raise


def read_metadata(source: Path, *,
                  max_members: int = EngineConfig.max_image_members
                  ) -> UnifiedMetadata:
    """The metadata of a split image's metadata tarball (metadata.yaml
    and templates/, checked as in a unified tarball); a tarball that also
    holds rootfs/ is refused (upload it as a unified tarball instead)."""
    walk = _MetadataOnly(Path(source), None, MAX_METADATA + MAX_TEMPLATES,
                         max_members)
    walk.run()
    return walk.result()


class _Repack(extract.Scan):

    def __init__(self, source: Path, dest: tarfile.TarFile, max_bytes: int,
                 max_members: int) -> None:
        super().__init__(source, max_bytes, max_members, _PREFIX)
        self.dest = dest
        self.metadata: dict[str, Any] | None = None
        self.files: dict[str, str] = {}
        self.template_bytes = 0
        self.entries = 0

    def make(self, tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str,
             kind: str, target: str | None) -> None:
        info = tarfile.TarInfo(f"./{rel}" if rel else ".")
        info.mode = m.mode & 0o7777
        info.uid, info.gid, info.mtime = m.uid, m.gid, m.mtime
        info.uname = info.gname = ""  # owners are numeric in a rootfs
        info.pax_headers = {k: v for k, v in m.pax_headers.items()
                            if k.startswith(_XATTRS)}
        data = None
        self.entries += bool(rel)
        if kind == "d":
            info.type = tarfile.DIRTYPE
        elif kind == "l":
            info.type, info.linkname = tarfile.SYMTYPE, m.linkname
        elif kind == "h":
            info.type, info.linkname = tarfile.LNKTYPE, f"./{target}"
        else:
            info.type, info.size = tarfile.REGTYPE, m.size
            data = tar.extractfile(m)  # sparse members come out filled
        try:
            self.dest.addfile(info, data)
        except OSError as exc:
            if exc.errno is not None:
                raise  # the output's trouble (ENOSPC...), not the image's
            self._invalid(f"member {m.name!r} is truncated")

    def outside(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = [p for p in m.name.split("/") if p not in ("", ".")]
        if parts == ["metadata.yaml"]:
            self._metadata(tar, m)
        elif len(parts) > 1 and parts[0] == "templates" and m.isreg():
            self.template_bytes += m.size
            if self.template_bytes > MAX_TEMPLATES:
                raise errors.ImageTooLarge(
                    source=str(self.source), limit=f"{MAX_TEMPLATES} bytes",
                    reason=f"its templates add up to more than "
                    f"{MAX_TEMPLATES} bytes (at {m.name!r})")
            try:
                text = _read(tar, m).decode()
            except UnicodeDecodeError:
                self._invalid(f"template {m.name!r} is not UTF-8 text")
            self.files["/".join(parts[1:])] = text

    def _metadata(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        if self.metadata is not None:
            self._invalid(f"{m.name!r} appears twice")
        if not m.isreg():
            self._invalid(f"{m.name!r} is not a regular file")
        if m.size > MAX_METADATA:
            raise errors.ImageTooLarge(
                source=str(self.source), limit=f"{MAX_METADATA} bytes",
                reason=f"member {m.name!r} has {m.size} bytes")
        try:
            loaded = yaml.load(_read(tar, m), Loader=_Loader)
        except (yaml.YAMLError, RecursionError) as exc:
            self._invalid(f"metadata.yaml is not valid YAML: "
                          f"{str(exc)[:300]}")
        if not isinstance(loaded, dict):
            self._invalid("metadata.yaml is not a mapping")
        self.metadata = loaded
        # Checked now, so that a bad image fails before rootfs/ is copied.
        self._checked_header()

    def _checked_header(self) -> tuple[str, int]:
        meta = self.metadata or {}
        arch = meta.get("architecture")
        if not isinstance(arch, str) or not arch.strip():
            self._invalid("metadata.yaml has no architecture (LXD requires "
                          "one, e.g. 'architecture: x86_64')")
        if len(arch) > 64 or not arch.isprintable():
            self._invalid(f"metadata.yaml's architecture {arch[:64]!r} is "
                          "not an architecture name")
        date = meta.get("creation_date")
        if not isinstance(date, str) or not date.strip():
            self._invalid("metadata.yaml has no creation_date (LXD requires "
                          "one: seconds since 1970)")
        try:
            created = int(date)
        except ValueError:
            created = 0
        if created <= 0:
            self._invalid(f"metadata.yaml's creation_date {date[:64]!r} is "
                          "not a positive number of seconds since 1970")
        return facts.normalise_architecture(arch), created

    def result(self) -> UnifiedMetadata:
        if self.metadata is None:
            self._invalid("no metadata.yaml at the top of the tarball")
        if not self.entries:
            self._invalid("rootfs/ is missing or empty")
        arch, created = self._checked_header()
        props = self.metadata.get("properties") or {}
        return UnifiedMetadata(
            architecture=arch, creation_date=created,
            properties=self._strings(props, "properties"),
            templates=self._rules(self.metadata.get("templates") or {}))

    def _rules(self, rules: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(rules, dict) or len(rules) > _MAX_RULES:
            self._invalid(f"metadata.yaml's templates is not a mapping of "
                          f"at most {_MAX_RULES} paths")
        out = {}
        for path, rule in rules.items():
            where = f"templates[{path[:200]!r}]"
            if not path.startswith("/") or not isinstance(rule, dict):
                self._invalid(f"metadata.yaml's {where} is not an absolute "
                              "path with a rule")
            name = rule.get("template")
            if not isinstance(name, str) or name not in self.files:
                self._invalid(f"metadata.yaml's {where} names the template "
                              f"{str(name)[:200]!r}, which templates/ "
                              "lacks")
            when = rule.get("when") or []
            if not isinstance(when, list) or not set(when) <= set(_WHEN):
                self._invalid(f"metadata.yaml's {where}.when is not a list "
                              f"of {', '.join(_WHEN)}")
            out[path] = {
                "when": list(when), "template": name,
                "create_only": str(rule.get("create_only")).lower() in (
                    "true", "yes", "on"),
                "properties": self._strings(rule.get("properties") or {},
                                            f"{where}.properties"),
                "content": self.files[name]}
        return out

    def _strings(self, mapping: Any, where: str) -> dict[str, str]:
        """A mapping of strings (what LXD's map[string]string takes)."""
        if not isinstance(mapping, dict):
            self._invalid(f"metadata.yaml's {where} is not a mapping")
        for key, value in mapping.items():
            if not isinstance(value, str) or len(value) > _MAX_SCALAR:
                self._invalid(f"metadata.yaml's {where}.{key[:100]} is not "
                              f"a string of at most {_MAX_SCALAR} "
                              "characters")
        return dict(mapping)


class _MetadataOnly(_Repack):
    """A split image's metadata part: nothing under rootfs/."""

    def make(self, tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str,
             kind: str, target: str | None) -> None:
        if rel:
            self._invalid("the metadata part holds rootfs/ members: upload "
                          "one unified tarball, or the rootfs as the "
                          "rootfs part")

    def result(self) -> UnifiedMetadata:
        self.entries = 1  # the rootfs comes in its own part
        return super().result()


class _Loader(yaml.BaseLoader):
    """Strings, lists and mappings only, and no aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases are not allowed",
                self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _read(tar: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
    data = tar.extractfile(m)
    return data.read() if data is not None else b""
