import threading
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from nova_lxd.virt import glance


class Meta(SimpleNamespace):
    def obj_attr_is_set(self, name):
        return name in self.__dict__


def test_known_origin_skips_download(tmp_path):
    engine = mock.Mock()
    engine.find_image.return_value = "known"
    meta = Meta(id="img", checksum="c1")
    with mock.patch.object(glance.glance, "API") as api:
        assert glance.ensure_image(engine, "ctx", meta, tmp_path) == "known"
    api.assert_not_called()
    engine.find_image.assert_called_once_with({"glance_id": "img",
                                               "checksum": "c1"})


def test_download_imported_and_removed(tmp_path):
    engine = mock.Mock()
    engine.config.root = tmp_path
    engine.find_image.return_value = None
    meta = Meta(id="img", disk_format="raw", container_format="bare")
    seen = {}

    def download(context, image_id, dest_path):
        Path(dest_path).write_bytes(b"x")
        seen["path"] = Path(dest_path)

    def import_image(path, **kwargs):
        seen["kwargs"] = kwargs
        assert path.read_bytes() == b"x"
        return "imported"

    engine.import_image.side_effect = import_image
    with mock.patch.object(glance.glance, "API") as api:
        api.return_value.download.side_effect = download
        assert glance.ensure_image(engine, "ctx", meta, tmp_path) == "imported"
    assert seen["kwargs"] == {"origin": {"glance_id": "img"},
                              "disk_format": "raw",
                              "container_format": "bare"}
    assert seen["path"].parent == tmp_path
    assert not seen["path"].exists()


def test_concurrent_spawns_download_once(tmp_path):
    engine = mock.Mock()
    engine.config.root = tmp_path
    imported = []
    engine.find_image.side_effect = (
        lambda origin: imported[0] if imported else None)
    started = threading.Event()

    def download(context, image_id, dest_path):
        started.set()
        time.sleep(0.2)  # the second thread arrives meanwhile
        Path(dest_path).write_bytes(b"x")

    def import_image(path, **kwargs):
        imported.append("image")
        return "image"

    engine.import_image.side_effect = import_image
    meta = Meta(id="img")
    results = []
    with mock.patch.object(glance.glance, "API") as api:
        api.return_value.download.side_effect = download
        threads = [threading.Thread(target=lambda: results.append(
            glance.ensure_image(engine, "ctx", meta, tmp_path)))
            for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == ["image", "image"]
    assert api.return_value.download.call_count == 1


def test_remove_stale_downloads(tmp_path):
    (tmp_path / ".glance-abc").write_bytes(b"partial")
    (tmp_path / "images").mkdir()
    assert glance.remove_stale_downloads(tmp_path) == [
        tmp_path / ".glance-abc"]
    assert [p.name for p in tmp_path.iterdir()] == ["images"]
