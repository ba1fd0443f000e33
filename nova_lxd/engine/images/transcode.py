"""Re-compress a tarball into the compression an operator asked for.

Conversions produce zstd (multi-threaded, fast); ``nova-lxd-image convert
SOURCE DEST.tar.gz`` wants gzip, so the stream is decompressed and
compressed again, chunk by chunk, never whole in memory.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from nova_lxd.engine import errors
from nova_lxd.engine.images import compression

_SUFFIXES = (
    (".tar.zst", "zst"), (".tzst", "zst"),
    (".tar.gz", "gz"), (".tgz", "gz"),
    (".tar.xz", "xz"), (".txz", "xz"),
    (".tar.bz2", "bz2"), (".tbz2", "bz2"),
    (".tar", "none"),
)
_CHUNK = 1024 * 1024


def compression_for(dest: Path) -> str:
    """The compression a destination's name asks for."""
    name = dest.name.lower()
    for suffix, kind in _SUFFIXES:
        if name.endswith(suffix):
            return kind
    raise errors.InvalidInput(
        f"Cannot tell the compression from {dest.name!r}: name it "
        f"*.tar, *.tar.gz, *.tar.xz, *.tar.bz2 or *.tar.zst.")


@contextlib.contextmanager
def open_compressed(path: Path, kind: str) -> Iterator[BinaryIO]:
    """A writer compressing into ``path``."""
    with open(path, "wb") as raw:
        if kind == "none":
            yield raw
        elif kind == "gz":
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
                yield out
        elif kind == "xz":
            with lzma.LZMAFile(raw, "wb", preset=6) as out:
                yield out
        elif kind == "bz2":
            with bz2.BZ2File(raw, "wb") as out:
                yield out
        elif kind == "zst":
            cctx = zstandard.ZstdCompressor(level=3, threads=-1,
                                            write_checksum=True)
            with cctx.stream_writer(raw, closefd=False) as out:
                yield out
        else:
            raise errors.InvalidInput(f"Unknown compression {kind!r}.")


def transcode(source: Path, dest: Path, kind: str) -> None:
    """Write ``source`` (any supported compression) to ``dest`` compressed
    as ``kind``; a straight copy when nothing changes."""
    if compression.detect_compression(source) == kind:
        shutil.copyfile(source, dest)
        return
    with compression.open_decompressed(source) as src, \
            open_compressed(dest, kind) as out:
        shutil.copyfileobj(src, out, _CHUNK)
