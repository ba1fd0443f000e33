import logging
import tarfile
from pathlib import Path

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.images import compression, progress, transcode


@pytest.mark.parametrize("name,kind", [
    ("a.tar", "none"), ("a.tar.gz", "gz"), ("a.tgz", "gz"),
    ("a.tar.xz", "xz"), ("a.tar.bz2", "bz2"), ("A.TAR.ZST", "zst"),
    ("a.tzst", "zst"),
])
def test_compression_from_name(name, kind):
    assert transcode.compression_for(Path(name)) == kind


def test_unknown_suffix_is_a_clear_error():
    with pytest.raises(errors.InvalidInput) as exc:
        transcode.compression_for(Path("rootfs.zip"))
    assert ".tar.zst" in str(exc.value)


@pytest.mark.parametrize("kind", ["none", "gz", "xz", "bz2", "zst"])
def test_transcode_roundtrip(tmp_path, kind):
    src = tmp_path / "src.tar.zst"
    payload = tmp_path / "payload"
    payload.write_bytes(b"hello " * 1000)
    with transcode.open_compressed(src, "zst") as out, \
            tarfile.open(fileobj=out, mode="w|") as tar:
        tar.add(payload, arcname="./payload")
    dest = tmp_path / "dest"
    transcode.transcode(src, dest, kind)
    assert compression.detect_compression(dest) == kind
    with compression.open_decompressed(dest) as f, \
            tarfile.open(fileobj=f, mode="r|") as tar:
        member = next(iter(tar))
        assert member.name == "./payload"
        assert tar.extractfile(member).read() == b"hello " * 1000


def test_log_progress_logs_each_step_once(caplog):
    caplog.set_level(logging.INFO)
    report = progress.LogProgress("img.qcow2", step=25)
    for fraction in (0, 0.1, 0.26, 0.3, 0.5, 0.99, 1.0, 1.0):
        report("convert", fraction)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"img.qcow2: convert {p}%" for p in (0, 25, 50, 75,
                                                          100)]


def test_tee_feeds_every_callback():
    seen_a, seen_b = [], []
    report = progress.tee(lambda s, f: seen_a.append((s, f)), None,
                          lambda s, f: seen_b.append((s, f)))
    report("archive", 0.5)
    assert seen_a == seen_b == [("archive", 0.5)]
