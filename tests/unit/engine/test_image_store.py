"""The image store: import, dedup, aliases, lookup, delete, crash safety."""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from nova_lxd.engine import errors, fsutil
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.images import extract as extract_mod
from nova_lxd.engine.images.store import Image, ImageStore
from tests.unit.engine.test_extract import COMPRESSIONS, build_tar, entry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def rootfs(tmp_path: Path, name: str = "img.tar", kind: str = "gz",
           marker: bytes = b"1") -> Path:
    return build_tar(tmp_path / name, [
        entry("./", "d"), entry("./bin/", "d"),
        entry("./bin/sh", "f", b"#!busybox " + marker, mode=0o755),
        entry("./etc/hostname", "f", b"box\n")], kind)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def image_dirs(store: ImageStore) -> list[str]:
    return sorted(p.name for p in store.directory.iterdir()
                  if len(p.name) == 64)


def leftovers(store: ImageStore) -> list[str]:
    return sorted(os.listdir(store.directory / ".tmp"))


def test_import_lays_out_the_image(tmp_path, store):
    src = rootfs(tmp_path)
    image = store.import_tarball(src, aliases=["busybox"],
                                 properties={"os": "busybox"})
    fp = hashlib.sha256(src.read_bytes()).hexdigest()
    assert image.fingerprint == fp
    assert (image.filename, image.compression) == ("rootfs.tar.gz", "gz")
    assert image.size == src.stat().st_size
    assert image.aliases == ("busybox",)
    assert image.properties == {"os": "busybox"}
    assert image.origin == {"path": str(src)}
    assert (image.members, image.unpacked_size) == (4, 15)
    assert image.created_at == image.last_used_at > time.time() - 60
    folder = store.directory / fp
    assert sorted(os.listdir(folder)) == ["image.json", "rootfs.tar.gz"]
    assert (folder / "rootfs.tar.gz").read_bytes() == src.read_bytes()
    record = fsutil.read_json(folder / "image.json")
    assert record["fingerprint"] == fp and "aliases" not in record
    assert fsutil.read_json(store.directory / "aliases.json") == {
        "busybox": fp}
    assert store.tarball_path(fp) == folder / "rootfs.tar.gz"
    assert leftovers(store) == []


def test_image_is_frozen_and_serialisable(tmp_path, store):
    image = store.import_tarball(rootfs(tmp_path), aliases=["a", "b"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.size = 1
    d = image.to_dict()
    assert d["aliases"] == ["a", "b"]
    assert Image.from_record(d, ["a", "b"]) == image
    assert hash(image) == hash(store.get("a"))


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_every_compression_imports(tmp_path, store, kind):
    image = store.import_tarball(rootfs(tmp_path, kind=kind))
    suffix = "" if kind == "none" else f".{kind}"
    assert image.filename == f"rootfs.tar{suffix}"
    assert image.compression == kind
    assert store.tarball_path(image.fingerprint).is_file()


def test_import_twice_dedups_and_adds_aliases(tmp_path, store):
    first = store.import_tarball(rootfs(tmp_path), aliases=["one"],
                                 properties={"v": 1})
    copy = tmp_path / "copy.tar.gz"
    shutil.copy(tmp_path / "img.tar", copy)
    second = store.import_tarball(copy, aliases=["two"],
                                  properties={"v": 2})
    assert second.fingerprint == first.fingerprint
    assert second.aliases == ("one", "two")
    assert second.properties == {"v": 1}  # the first import's facts stay
    assert second.created_at == first.created_at
    assert len(image_dirs(store)) == 1
    assert leftovers(store) == []


def test_lookup_by_fingerprint_prefix_and_alias(tmp_path, store):
    image = store.import_tarball(rootfs(tmp_path), aliases=["deb"])
    fp = image.fingerprint
    assert store.get(fp) == image
    assert store.get(fp[:8]) == image
    assert store.get(fp[:20].upper()) == image
    assert store.get("deb") == image
    for ref in (fp[:7], "nope", "0" * 64, ""):
        with pytest.raises(errors.ImageNotFound):
            store.get(ref)


def test_ambiguous_prefix_is_a_clear_error(tmp_path, store):
    image = store.import_tarball(rootfs(tmp_path))
    fp = image.fingerprint
    twin = fp[:10] + ("0" if fp[10] != "0" else "1") + fp[11:]
    shutil.copytree(store.directory / fp, store.directory / twin)
    with pytest.raises(errors.InvalidInput, match="ambiguous") as exc:
        store.get(fp[:10])
    assert fp in str(exc.value) and twin in str(exc.value)
    assert store.get(fp[:11]) == image


def test_alias_conflicts(tmp_path, store):
    a = store.import_tarball(rootfs(tmp_path, "a.tar"), aliases=["web"])
    b_src = rootfs(tmp_path, "b.tar", marker=b"2")
    with pytest.raises(errors.ImageAliasExists, match=a.fingerprint):
        store.import_tarball(b_src, aliases=["web"])
    assert image_dirs(store) == [a.fingerprint]  # nothing half-made
    assert leftovers(store) == []
    b = store.import_tarball(b_src)
    with pytest.raises(errors.ImageAliasExists):
        store.add_alias("web", b.fingerprint)
    assert store.add_alias("web", a.fingerprint[:8]).aliases == ("web",)
    assert store.add_alias("db", b.fingerprint).aliases == ("db",)
    assert store.get("web") == store.get(a.fingerprint)


@pytest.mark.parametrize("alias", ["", "-x", "a b", "a\nb", "x" * 256,
                                   "0" * 64, "é"])
def test_invalid_alias_names(tmp_path, store, alias):
    with pytest.raises(errors.InvalidName):
        store.import_tarball(rootfs(tmp_path), aliases=[alias])
    assert image_dirs(store) == []


def test_remove_alias(tmp_path, store):
    image = store.import_tarball(rootfs(tmp_path),
                                 aliases=["ubuntu/22.04", "x"])
    store.remove_alias("x")
    assert store.get(image.fingerprint).aliases == ("ubuntu/22.04",)
    with pytest.raises(errors.ImageNotFound):
        store.get("x")
    with pytest.raises(errors.ImageNotFound, match="alias"):
        store.remove_alias("x")


def test_delete_removes_the_image_and_its_aliases(tmp_path, store):
    a = store.import_tarball(rootfs(tmp_path, "a.tar"), aliases=["a1",
                                                                 "a2"])
    b = store.import_tarball(rootfs(tmp_path, "b.tar", marker=b"2"),
                             aliases=["b1"])
    store.delete("a2")
    assert image_dirs(store) == [b.fingerprint]
    assert fsutil.read_json(store.directory / "aliases.json") == {
        "b1": b.fingerprint}
    with pytest.raises(errors.ImageNotFound):
        store.get(a.fingerprint)
    with pytest.raises(errors.ImageNotFound):
        store.delete(a.fingerprint)
    assert [i.fingerprint for i in store.list()] == [b.fingerprint]
    assert leftovers(store) == []


def test_list_in_import_order(tmp_path, store):
    a = store.import_tarball(rootfs(tmp_path, "a.tar"))
    b = store.import_tarball(rootfs(tmp_path, "b.tar", marker=b"2"),
                             aliases=["b"])
    assert store.list() == [a, b]


def test_touch_updates_last_used_only(tmp_path, store):
    image = store.import_tarball(rootfs(tmp_path))
    time.sleep(0.01)
    store.touch(image.fingerprint)
    after = store.get(image.fingerprint)
    assert after.last_used_at > image.last_used_at
    assert after.created_at == image.created_at
    with pytest.raises(errors.ImageNotFound):
        store.touch("f" * 64)


@pytest.mark.parametrize("case", ["unsafe", "not-tar", "empty", "big"])
def test_a_refused_import_leaves_nothing(tmp_path, case):
    store = ImageStore(tmp_path / "images", max_bytes=1000)
    src = tmp_path / "src"
    if case == "unsafe":
        build_tar(src, [entry("etc", "l", link="/"),
                        entry("etc/passwd", "f", b"x")], "xz")
        expected = errors.UnsafeImage
    elif case == "not-tar":
        src.write_bytes(b"<html>not found</html>" * 50)
        expected = errors.InvalidImage
    elif case == "empty":
        build_tar(src, [], "gz")
        expected = errors.InvalidImage
    else:
        build_tar(src, [entry("f", "f", b"x" * 1001)], "zst")
        expected = errors.ImageTooLarge
    with pytest.raises(expected):
        store.import_tarball(src, aliases=["x"])
    assert image_dirs(store) == []
    assert leftovers(store) == []
    assert store.list() == []


def test_source_must_be_a_regular_file(tmp_path, store):
    with pytest.raises(errors.InvalidImage, match="regular file"):
        store.import_tarball(tmp_path)


def test_properties_must_be_json(tmp_path, store):
    with pytest.raises(errors.InvalidInput, match="JSON"):
        store.import_tarball(rootfs(tmp_path), properties={"x": object()})
    assert image_dirs(store) == []


def test_leftovers_are_cleaned_but_live_jobs_kept(tmp_path, store):
    stale = store.directory / ".tmp" / "job-dead"
    stale.mkdir()
    (stale / "upload").write_bytes(b"half a tarball")
    (store.directory / ".tmp" / "stray-file").write_bytes(b"x")
    with store.scratch() as live:
        ImageStore(store.directory)
        assert live.is_dir()
        assert leftovers(store) == [live.name]
    assert leftovers(store) == []


def _import_then_hang(directory: Path, src: Path) -> None:
    def hang(*args, **kwargs):
        time.sleep(600)
    extract_mod.scan_rootfs = hang  # the import stops after its copy
    ImageStore(directory).import_tarball(src)


def test_sigkill_mid_import_leaves_nothing(tmp_path, store):
    src = rootfs(tmp_path)
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_import_then_hang,
                        args=(store.directory, src))
    child.start()
    try:
        deadline = time.monotonic() + 10
        while not list((store.directory / ".tmp").glob("*/upload")):
            assert time.monotonic() < deadline, "the import never started"
            time.sleep(0.01)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    assert leftovers(store)  # the dead import's job
    reopened = ImageStore(store.directory)
    assert leftovers(reopened) == []
    assert reopened.list() == []


def _import(directory: Path, src: Path, alias: str, start, results) -> None:
    start.wait()
    store = ImageStore(directory)
    results.put(store.import_tarball(src, aliases=[alias]).fingerprint)


def test_concurrent_imports_of_one_file_make_one_image(tmp_path, store):
    src = build_tar(tmp_path / "big.tar", [
        entry(f"f{i}", "f", os.urandom(20_000)) for i in range(200)], "gz")
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_import, args=(store.directory, src,
                                               f"alias{i}", start, results))
             for i in range(2)]
    for p in procs:
        p.start()
    fingerprints = {results.get(timeout=60) for _ in procs}
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert len(fingerprints) == 1
    fp = fingerprints.pop()
    assert image_dirs(store) == [fp]
    assert store.get(fp).aliases == ("alias0", "alias1")
    assert leftovers(store) == []


def test_store_from_config(tmp_path):
    config = EngineConfig(root=tmp_path, max_unpacked_size=123,
                          max_image_members=7, lock_timeout=3.0)
    store = ImageStore.from_config(config)
    assert store.directory == tmp_path / "images"
    assert (store.max_bytes, store.max_members) == (123, 7)
    assert store.lock_timeout == 3.0


def test_scan_limits_come_from_the_store(tmp_path):
    store = ImageStore(tmp_path / "images", max_members=3)
    with pytest.raises(errors.ImageTooLarge, match="3 members"):
        store.import_tarball(rootfs(tmp_path))
    stats = extract_mod.scan_rootfs(rootfs(tmp_path), max_bytes=10 ** 6,
                                    max_members=4)
    assert stats.members == 4
