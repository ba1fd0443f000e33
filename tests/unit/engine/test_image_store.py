"""The image store: import, dedup, aliases, lookup, delete, crash safety."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from nova_lxd.engine import errors, fsutil
from nova_lxd.engine.config import EngineConfig
from nova_lxd.engine.images import compression as compression_mod
from nova_lxd.engine.images import extract as extract_mod
from nova_lxd.engine.images.store import Image, ImageStore
from nova_lxd.testing.busybox import build_busybox_tarball, busybox_version
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


# -- moving a scratch file in ------------------------------------------------

def test_move_import_renames_the_scratch_file_in(tmp_path, store):
    with store.scratch() as work:
        made = shutil.copy(rootfs(tmp_path), work / "rootfs.tar.gz")
        data, inode = Path(made).read_bytes(), os.stat(made).st_ino
        image = store.import_tarball(made, move=True, origin={"job": 1})
        assert not Path(made).exists()
        assert os.listdir(work) == [".lock"]
        kept = store.tarball_path(image.fingerprint)
        assert os.stat(kept).st_ino == inode  # the same file: no copy
        assert kept.read_bytes() == data
        assert image.fingerprint == hashlib.sha256(data).hexdigest()
        assert image.size == len(data) and image.members == 4
    assert leftovers(store) == []


def test_move_import_of_a_known_file_consumes_it(tmp_path, store):
    first = store.import_tarball(rootfs(tmp_path))
    with store.scratch() as work:
        made = shutil.copy(tmp_path / "img.tar", work / "again.tar.gz")
        again = store.import_tarball(made, move=True, aliases=["again"])
        assert not Path(made).exists()
    assert again.fingerprint == first.fingerprint
    assert again.aliases == ("again",)
    assert image_dirs(store) == [first.fingerprint]
    assert leftovers(store) == []


def test_move_import_of_a_refused_file_leaves_nothing(tmp_path, store):
    with store.scratch() as work:
        made = build_tar(work / "bad.tar", [entry("etc", "l", link="/"),
                                            entry("etc/passwd", "f")])
        with pytest.raises(errors.UnsafeImage):
            store.import_tarball(made, move=True)
        assert not made.exists()
    assert image_dirs(store) == [] and leftovers(store) == []


def test_only_scratch_files_can_be_moved(tmp_path, store):
    src = rootfs(tmp_path)
    with pytest.raises(errors.InvalidInput, match="scratch"):
        store.import_tarball(src, move=True)
    assert src.is_file()
    with store.scratch() as work:
        os.symlink(src, work / "link.tar.gz")
        with pytest.raises(errors.InvalidInput, match="scratch"):
            store.import_tarball(work / "link.tar.gz", move=True)
    assert src.is_file() and image_dirs(store) == []


# -- facts in the import's scan ----------------------------------------------

def test_facts_are_read_in_the_same_pass(tmp_path, store, monkeypatch):
    src = build_busybox_tarball(tmp_path / "bb.tar.zst")
    opened = []
    real = compression_mod.open_decompressed

    def counting(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(compression_mod, "open_decompressed", counting)
    image = store.import_tarball(src, facts=True,
                                 properties={"os_name": "my own name"})
    assert opened == ["upload"]  # one read of the tarball
    version = busybox_version()
    assert image.properties == {
        "os_distro": "busybox", "os_version": version,
        "os_name": "my own name",  # what the caller says wins
        "architecture": "x86_64"}


def test_no_facts_unless_asked(tmp_path, store):
    src = build_busybox_tarball(tmp_path / "bb.tar.gz")
    assert store.import_tarball(src).properties == {}


# -- finding what a Glance image became --------------------------------------

def test_find_by_origin(tmp_path, store):
    a = store.import_tarball(rootfs(tmp_path, "a.tar"),
                             origin={"glance_id": "g1", "checksum": "c1"})
    b = store.import_tarball(rootfs(tmp_path, "b.tar", marker=b"2"),
                             origin={"glance_id": "g2", "checksum": "c2"})
    assert store.find_by_origin(glance_id="g1", checksum="c1") == a
    assert store.find_by_origin(glance_id="g2") == b
    assert store.find_by_origin(glance_id="g1", checksum="c2") is None
    assert store.find_by_origin(glance_id="g3") is None
    assert store.find_by_origin(checksum="c1", other=None) is None
    with pytest.raises(errors.InvalidInput):
        store.find_by_origin()
    # A re-upload under the same id with new content: the newest wins.
    c = store.import_tarball(rootfs(tmp_path, "c.tar", marker=b"3"),
                             origin={"glance_id": "g1", "checksum": "c3"})
    assert store.find_by_origin(glance_id="g1") == c
    store.delete(c.fingerprint)
    assert store.find_by_origin(glance_id="g1") == a


# -- housekeeping ------------------------------------------------------------

class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def aged_images(tmp_path, store, monkeypatch) -> list[Image]:
    """Four images of growing size, used 40, 30, 20 and 10 days ago (the
    first two imported in the other order)."""
    clock = Clock(1_700_000_000.0)
    monkeypatch.setattr(time, "time", clock)
    images = []
    for i in range(4):
        src = build_tar(tmp_path / f"i{i}.tar", [
            entry("f", "f", os.urandom(1000 * (i + 1)))])
        images.append(store.import_tarball(src))
        clock.now += 60
    for days, image in zip((40, 30, 20, 10), images, strict=True):
        clock.now = 1_700_000_000.0 + 50 * 86400 - days * 86400
        store.touch(image.fingerprint)
    clock.now = 1_700_000_000.0 + 50 * 86400
    return [store.get(i.fingerprint) for i in images]


def test_total_size(tmp_path, store, monkeypatch):
    assert store.total_size() == 0
    images = aged_images(tmp_path, store, monkeypatch)
    assert store.total_size() == sum(i.size for i in images) == sum(
        store.tarball_path(i.fingerprint).stat().st_size for i in images)


def test_evict_least_recently_used_first(tmp_path, store, monkeypatch,
                                         caplog):
    images = aged_images(tmp_path, store, monkeypatch)
    total = store.total_size()
    caplog.set_level(logging.INFO)
    # Just over what the two newest hold: the two oldest go, oldest first.
    limit = images[2].size + images[3].size
    assert store.evict(limit, in_use=set()) == images[:2]
    assert [i.fingerprint for i in store.list()] == [
        i.fingerprint for i in images[2:]]
    assert store.total_size() == total - images[0].size - images[1].size
    logged = [r.getMessage() for r in caplog.records
              if "Evicted image" in r.getMessage()]
    assert len(logged) == 2
    assert images[0].fingerprint[:12] in logged[0]
    assert f"{images[0].size} bytes" in logged[0]
    assert "last used 40 days ago" in logged[0]
    # Under the limit already: nothing more goes.
    assert store.evict(limit, in_use=set()) == []


def test_evict_never_removes_an_image_in_use(tmp_path, store, monkeypatch,
                                             caplog):
    images = aged_images(tmp_path, store, monkeypatch)
    oldest, second, third, newest = images
    in_use = {oldest.fingerprint, third.fingerprint}
    removed = store.evict(0, in_use=in_use)
    assert removed == [second, newest]
    assert {i.fingerprint for i in store.list()} == in_use
    assert "used by containers" in caplog.text
    assert store.evict(0, in_use=in_use) == []


def test_evict_removes_aliases_too(tmp_path, store, monkeypatch):
    images = aged_images(tmp_path, store, monkeypatch)
    store.add_alias("old", images[0].fingerprint)
    store.evict(store.total_size() - 1, in_use=set())
    with pytest.raises(errors.ImageNotFound):
        store.get("old")
    assert len(store.list()) == 3


def test_evict_refuses_a_negative_limit(store):
    with pytest.raises(ValueError):
        store.evict(-1, in_use=set())
