"""The transfer stream: one container (record, snapshots, rootfs) as a
sequence of framed parts, checked end to end.

A move between hosts must not commit a container from a stream that was
cut or altered on the way, so the stream carries its own proof: the
last frame (the trailer) holds the sha256 and length of every byte
before it, and the reader refuses to report the stream complete unless
both match. Framing (rather than one tar archive) lets each part be a
separate ``tar | zstd`` of one tree, made by GNU tar with the owner maps
the sender needs, and lets the reader bound the JSON parts in memory.

Layout::

    MAGIC
    P {"kind": "manifest"}   D <json> ...  E
    P {"kind": "tree", "snapshot": "snap0"}  D <tar.zst bytes> ...  E
    ...
    P {"kind": "tree", "snapshot": null}     D ...  E
    T {"sha256": "...", "bytes": N}

Each frame is one type byte, a 4-byte big-endian length and the payload.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, BinaryIO

from nova_lxd.engine import errors

MAGIC = b"NLXT\x001\n"
"""Format name and version: a reader refuses any other."""

PART, DATA, END, TRAILER = b"P", b"D", b"E", b"T"
MAX_FRAME = 1024 * 1024
"""Largest payload of one frame; data is cut into frames this big."""
MAX_JSON = 1024 * 1024
"""Largest JSON part (the manifest) the reader keeps in memory."""
_HEAD = struct.Struct(">cI")


class TransferCorrupt(errors.InvalidInput):
    msg_fmt = ("The transfer stream is not usable: %(reason)s. Nothing was "
               "committed; retry the transfer.")


class StreamWriter:
    """Writes parts to ``out`` (anything with ``write``) and hashes them."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.bytes = 0
        self._in_part = False
        self._write(MAGIC)

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        self.bytes += len(data)
        self._out.write(data)

    def _frame(self, kind: bytes, payload: bytes) -> None:
        self._write(_HEAD.pack(kind, len(payload)) + payload)

    def begin(self, kind: str, **info: Any) -> None:
        assert not self._in_part, "parts do not nest"
        self._frame(PART, json.dumps({"kind": kind, **info}).encode())
        self._in_part = True

    def data(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            piece, view = view[:MAX_FRAME], view[MAX_FRAME:]
            self._frame(DATA, bytes(piece))

    def end(self) -> None:
        self._frame(END, b"")
        self._in_part = False

    def json_part(self, kind: str, value: Any) -> None:
        self.begin(kind)
        self.data(json.dumps(value).encode())
        self.end()

    def finish(self) -> str:
        """Writes the trailer; returns the stream's sha256 (hex)."""
        assert not self._in_part, "a part is still open"
        digest = self._hash.hexdigest()
        trailer = json.dumps({"sha256": digest, "bytes": self.bytes})
        self._out.write(_HEAD.pack(TRAILER, len(trailer)) + trailer.encode())
        return digest


class StreamReader:
    """Reads the parts a ``StreamWriter`` wrote, from anything with
    ``read``; ``next_part`` returns None once the trailer checked out."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.sha256: str | None = None
        """Set once the whole stream has been read and verified."""
        self._left = 0
        """Bytes of the current data frame not yet read."""
        self._part_done = True
        if self._read_exact(len(MAGIC)) != MAGIC:
            raise TransferCorrupt(reason="it does not start like a "
                                         "nova-lxd transfer (version 1)")

    def _read_exact(self, size: int, *, hashed: bool = True) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self._src.read(left)
            if not chunk:
                raise TransferCorrupt(reason=f"it ended early, after "
                                             f"{self.bytes} bytes")
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if hashed:
            self._hash.update(data)
            self.bytes += len(data)
        return data

    def _head(self) -> tuple[bytes, int]:
        kind, size = _HEAD.unpack(self._read_exact(_HEAD.size,
                                                   hashed=False))
        if size > MAX_FRAME:
            raise TransferCorrupt(reason=f"a frame of {size} bytes is "
                                         f"over {MAX_FRAME}")
        return kind, size

    def _count_head(self, kind: bytes, size: int) -> None:
        raw = _HEAD.pack(kind, size)
        self._hash.update(raw)
        self.bytes += len(raw)

    def next_part(self) -> dict[str, Any] | None:
        """The next part's header, or None at a verified end."""
        if not self._part_done:
            raise TransferCorrupt(reason="a part was not read to its end")
        kind, size = self._head()
        if kind == TRAILER:
            self._check_trailer(self._read_exact(size, hashed=False))
            return None
        if kind != PART:
            raise TransferCorrupt(reason=f"a {kind!r} frame where a part "
                                         "should begin")
        self._count_head(kind, size)
        header = _loads(self._read_exact(size), "part header")
        if not isinstance(header, dict) or "kind" not in header:
            raise TransferCorrupt(reason="a part header without a kind")
        self._part_done = False
        return header

    def read(self, size: int = -1) -> bytes:
        """Data of the current part (b"" at its end), file-like, so that a
        decompressor or tar reader can pull from it."""
        if self._part_done:
            return b""
        while self._left == 0:
            kind, length = self._head()
            self._count_head(kind, length)
            if kind == END:
                self._part_done = True
                return b""
            if kind != DATA:
                raise TransferCorrupt(reason=f"a {kind!r} frame inside a "
                                             "part")
            self._left = length
        want = self._left if size is None or size < 0 else min(size,
                                                                 self._left)
        data = self._src.read(want)
        if not data:
            raise TransferCorrupt(reason=f"it ended early, after "
                                         f"{self.bytes} bytes")
        self._hash.update(data)
        self.bytes += len(data)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def read_json_part(self) -> Any:
        """The rest of the current part as JSON (bounded)."""
        chunks, total = [], 0
        while chunk := self.read(MAX_FRAME):
            total += len(chunk)
            if total > MAX_JSON:
                raise TransferCorrupt(reason=f"a JSON part over {MAX_JSON}"
                                             " bytes")
            chunks.append(chunk)
        return _loads(b"".join(chunks), "JSON part")

    def drain(self) -> None:
        """Skip the rest of the current part."""
        while self.read(MAX_FRAME):
            pass

    def _check_trailer(self, raw: bytes) -> None:
        trailer = _loads(raw, "trailer")
        digest = self._hash.hexdigest()
        if not isinstance(trailer, dict):
            raise TransferCorrupt(reason="the trailer is not an object")
        if trailer.get("bytes") != self.bytes:
            raise TransferCorrupt(reason=f"{self.bytes} bytes arrived, the "
                                         f"sender wrote "
                                         f"{trailer.get('bytes')}")
        if trailer.get("sha256") != digest:
            raise TransferCorrupt(reason=f"sha256 {digest} of what arrived "
                                         f"differs from the sender's "
                                         f"{trailer.get('sha256')}")
        self.sha256 = digest
        self._part_done = True


def _loads(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise TransferCorrupt(reason=f"its {what} is not JSON ({exc})"
                              ) from None
