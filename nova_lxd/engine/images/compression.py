"""Which compression an image tarball uses, and a streaming reader for it.

Images are sniffed by their first bytes, never by their names: tenants
upload files under any name. Every reader streams, so a 20 GiB image
costs a few megabytes of memory and no scratch copy. Corrupt compressed
data surfaces as ``InvalidImage`` from ``read()`` itself, so that callers
(the tar parser) tell a bad image from a failing host disk: only the
former is the tenant's fault.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from nova_lxd.engine import errors

COMPRESSIONS = ("none", "gz", "xz", "bz2", "zst")
"""The compressions an image tarball may use, ``none`` for a plain tar."""

SUFFIXES = {"none": "", "gz": ".gz", "xz": ".xz", "bz2": ".bz2",
            "zst": ".zst"}
"""File-name suffix of a ``.tar`` per compression."""

_HEAD = 512
_CHUNK = 256 * 1024
_BUFFER = 1024 * 1024
# xz -9 needs 65 MiB to decompress; the header of a hostile stream may ask
# for up to 4 GiB of dictionary, which liblzma would allocate up front.
_XZ_MEMLIMIT = 256 * 1024 * 1024
# zstd's own default window limit (128 MiB), said out loud: `zstd --long=31`
# images are refused rather than allowed 2 GiB of memory each.
_ZSTD_MAX_WINDOW = 1 << 27


def compression_from_header(head: bytes) -> str | None:
    """The compression of a file that starts with ``head`` (its first 512
    bytes), or None if it is neither a tar nor a supported compression."""
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0":
        return "bz2"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zst"
    # pzstd and seekable zstd start with a skippable frame 0x184D2A5?.
    if len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == (
            b"\x2a\x4d\x18"):
        return "zst"
    if len(head) >= _HEAD and _is_tar_header(head[:_HEAD]):
        return "none"
    return None


def _is_tar_header(block: bytes) -> bool:
    if block[257:262] == b"ustar":
        return True
    if not block.strip(b"\0"):
        return True  # an empty archive: its end marker
    # Pre-POSIX (v7) headers have no magic: trust a valid checksum.
    return _checksum_ok(block)


def tar_header_format(block: bytes) -> str | None:
    """``ustar`` (POSIX, pax included), ``gnu`` or ``v7`` if the 512-byte
    ``block`` is a tar header with a valid checksum, else None (an
    end-of-archive block of zeros included)."""
    if len(block) < _HEAD or not _checksum_ok(block[:_HEAD]):
        return None
    if block[257:262] == b"ustar":
        return "gnu" if block[262:265] == b"  \0" else "ustar"
    return "v7" if block[0] else None


def _checksum_ok(block: bytes) -> bool:
    try:
        stored = int(block[148:156].strip(b" \0") or b"-1", 8)
    except ValueError:
        return False
    fields = block[:148] + block[156:]
    unsigned = sum(fields) + 8 * 0x20
    # Some old tars summed signed chars: each high byte counts b - 256.
    signed = unsigned - 256 * sum(1 for b in fields if b > 127)
    return stored in (unsigned, signed)


def detect_compression(path: Path) -> str:
    """Sniff ``path``; ``InvalidImage`` if it is no tarball we can read."""
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    found = compression_from_header(head)
    if found is None:
        reason = ("file is empty" if not head else
                  "not a tar archive, nor one compressed with gzip, xz, "
                  "bzip2 or zstd")
        raise errors.InvalidImage(source=str(path), reason=reason)
    return found


class _MultiStreamReader(io.RawIOBase):
    """Decompresses concatenated xz or bzip2 streams (pxz, pbzip2), giving
    out at most one read's worth at a time: a bzip2 bomb turns 64 KiB into
    gigabytes in one call otherwise. Unlike ``lzma.LZMAFile``, it lets us
    cap the decoder's memory."""

    def __init__(self, fp: BinaryIO,
                 factory: Callable[[], Any]) -> None:
        super().__init__()
        self._fp = fp
        self._factory = factory
        self._dec = factory()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        with memoryview(b) as view, view.cast("B") as out:
            data = self._read(len(out))
            out[:len(data)] = data
        return len(data)

    def _read(self, size: int) -> bytes:
        while not self._done and size:
            dec = self._dec
            if dec.eof:
                raw = dec.unused_data or self._fp.read(_CHUNK)
                if not raw:
                    self._done = True
                    break
                self._dec = dec = self._factory()
                try:
                    data = dec.decompress(raw, size)
                except (lzma.LZMAError, OSError):
                    # Padding or trailing junk after a complete stream:
                    # ignored, like xz(1) and the stdlib readers do.
                    self._done = True
                    break
            elif dec.needs_input:
                raw = self._fp.read(_CHUNK)
                if not raw:
                    raise EOFError("compressed data ends before its "
                                   "end-of-stream marker")
                data = dec.decompress(raw, size)
            else:
                data = dec.decompress(b"", size)
            if data:
                return data
        return b""


class _Checked(io.RawIOBase):
    """Turns a decompressor's complaints into ``InvalidImage``."""

    _CORRUPT = (OSError, EOFError, zlib.error, lzma.LZMAError,
                zstandard.ZstdError)

    def __init__(self, inner: Any, source: Path,
                 compression: str) -> None:
        super().__init__()
        self._inner = inner
        self._source = source
        self._compression = compression

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            return self._inner.readinto(b)
        except self._CORRUPT as exc:
            kind = "truncated" if isinstance(exc, EOFError) else "corrupt"
            raise errors.InvalidImage(
                source=str(self._source),
                reason=f"{kind} {self._compression} data ({exc})") from exc


def _xz() -> lzma.LZMADecompressor:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ,
                                 memlimit=_XZ_MEMLIMIT)


@contextlib.contextmanager
def open_decompressed(path: Path,
                      compression: str | None = None) -> Iterator[BinaryIO]:
    """Yield a buffered binary reader of the decompressed ``path``.

    ``compression`` skips the sniffing when the caller already knows it.
    """
    path = Path(path)
    if compression is None:
        compression = detect_compression(path)
    elif compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}")
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(open(path, "rb"))
        if compression == "none":
            yield raw
            return
        inner: Any
        if compression == "gz":
            inner = stack.enter_context(gzip.GzipFile(fileobj=raw))
        elif compression == "zst":
            dctx = zstandard.ZstdDecompressor(
                max_window_size=_ZSTD_MAX_WINDOW)
            inner = stack.enter_context(dctx.stream_reader(
                raw, read_size=_CHUNK, read_across_frames=True,
                closefd=False))
        elif compression == "xz":
            inner = _MultiStreamReader(raw, _xz)
        else:
            inner = _MultiStreamReader(raw, bz2.BZ2Decompressor)
        yield io.BufferedReader(_Checked(inner, path, compression),
                                buffer_size=_BUFFER)
