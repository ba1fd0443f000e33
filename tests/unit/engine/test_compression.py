"""Compression sniffing and streaming decompression of image tarballs."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import tarfile
from pathlib import Path

import pytest
import zstandard

from nova_lxd.engine import errors
from nova_lxd.engine.images import compression

COMPRESSIONS = ("none", "gz", "xz", "bz2", "zst")


def tar_bytes(payload: bytes = b"hello\n") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/motd")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def compress(raw: bytes, kind: str) -> bytes:
    return {
        "none": lambda b: b,
        "gz": gzip.compress,
        "xz": lzma.compress,
        "bz2": bz2.compress,
        # Like zstd(1), with a content checksum.
        "zst": lambda b: zstandard.ZstdCompressor(
            write_checksum=True).compress(b),
    }[kind](raw)


def read_all(path: Path, **kw) -> bytes:
    with compression.open_decompressed(path, **kw) as f:
        return f.read()


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_detect_and_read_back(tmp_path, kind):
    raw = tar_bytes(os.urandom(300_000))
    path = tmp_path / "image"
    path.write_bytes(compress(raw, kind))
    assert compression.detect_compression(path) == kind
    assert read_all(path) == raw
    assert read_all(path, compression=kind) == raw


def test_suffixes_cover_every_compression():
    assert set(compression.SUFFIXES) == set(COMPRESSIONS)
    assert compression.SUFFIXES["gz"] == ".gz"


def test_unknown_compression_name_is_a_bug(tmp_path):
    path = tmp_path / "image"
    path.write_bytes(tar_bytes())
    with pytest.raises(ValueError):
        read_all(path, compression="lz4")


def test_v7_tar_without_magic_is_detected_by_checksum():
    block = bytearray(tar_bytes()[:512])
    block[257:265] = b"\0" * 8  # no "ustar" magic, as in V7 archives
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    assert compression.compression_from_header(bytes(block)) == "none"
    block[0] ^= 0x01  # now the checksum is wrong
    assert compression.compression_from_header(bytes(block)) is None


def test_empty_tar_is_a_tar():
    assert compression.compression_from_header(b"\0" * 10240) == "none"


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 600, "not a tar"),
    (b"short", "not a tar"),
    (b"\x04\x22\x4d\x18" + b"\0" * 600, "not a tar"),  # lz4: unsupported
])
def test_unsupported_input_is_invalid(tmp_path, data, reason):
    path = tmp_path / "image"
    path.write_bytes(data)
    with pytest.raises(errors.InvalidImage, match=reason):
        compression.detect_compression(path)


@pytest.mark.parametrize("kind", ["gz", "xz", "bz2", "zst"])
def test_concatenated_streams_are_read_whole(tmp_path, kind):
    # pigz, pxz, pbzip2 and pzstd write several streams back to back.
    raw = tar_bytes(os.urandom(100_000))
    path = tmp_path / "image"
    path.write_bytes(compress(raw[:4096], kind) + compress(raw[4096:], kind))
    assert read_all(path) == raw


def test_zstd_behind_a_skippable_frame(tmp_path):
    raw = tar_bytes()
    skippable = struct.pack("<II", 0x184D2A50, 4) + b"meta"
    path = tmp_path / "image"
    path.write_bytes(skippable + compress(raw, "zst"))
    assert compression.detect_compression(path) == "zst"
    assert read_all(path) == raw


@pytest.mark.parametrize("kind", ["gz", "xz", "bz2"])
def test_truncated_stream_is_invalid(tmp_path, kind):
    data = compress(tar_bytes(os.urandom(200_000)), kind)
    path = tmp_path / "image"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(errors.InvalidImage, match=f"truncated {kind}"):
        read_all(path)


@pytest.mark.parametrize("kind", ["gz", "xz", "bz2", "zst"])
def test_corrupt_stream_is_invalid(tmp_path, kind):
    text = b"".join(b"line %d of a config file\n" % i for i in range(9000))
    data = bytearray(compress(tar_bytes(text), kind))
    for i in range(100, len(data) - 100, 997):
        data[i] ^= 0x5A
    path = tmp_path / "image"
    path.write_bytes(bytes(data))
    with pytest.raises(errors.InvalidImage, match=f"{kind} data"):
        read_all(path)


def test_bzip2_bomb_is_decompressed_a_read_at_a_time(tmp_path):
    # 16 MiB of zeros in ~50 bytes: each read returns only what it asks.
    path = tmp_path / "bomb"
    path.write_bytes(bz2.compress(b"\0" * (16 << 20)))
    assert path.stat().st_size < 1000
    with open(path, "rb") as raw:
        reader = compression._MultiStreamReader(raw, bz2.BZ2Decompressor)
        buf = bytearray(4096)
        assert reader.readinto(buf) == 4096
        total = 4096
        while n := reader.readinto(buf):
            assert n <= 4096
            total += n
    assert total == 16 << 20


def test_xz_decoder_memory_is_capped(tmp_path, monkeypatch):
    # A stream whose dictionary needs more than the cap is refused, not
    # allocated (the cap is lowered here: big dictionaries compress slowly).
    monkeypatch.setattr(compression, "_XZ_MEMLIMIT", 4 << 20)
    path = tmp_path / "image.xz"
    path.write_bytes(lzma.compress(tar_bytes(), preset=6))  # 8 MiB dict
    with pytest.raises(errors.InvalidImage, match="corrupt xz data"):
        read_all(path)
    path.write_bytes(lzma.compress(tar_bytes(), preset=0))  # 256 KiB dict
    assert read_all(path) == tar_bytes()
