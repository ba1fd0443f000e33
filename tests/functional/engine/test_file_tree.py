"""Directories, symlinks and deletions in the rootfs of a real running
container: owners as the container sees them, and no way out through
links the tenant makes inside."""

from __future__ import annotations

import uuid

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.containers.files import RootfsFile


def run(engine, name: str, *command: str) -> str:
    result = engine.execute(name, list(command))
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode().strip()


def test_directories_symlinks_and_deletes(engine, image):
    engine.launch("tree", "busybox")
    engine.make_directory("tree", "/srv", mode=0o2775, uid=1000, gid=1001)
    assert run(engine, "tree", "stat", "-c", "%a %u %g", "/srv") == \
        "2775 1000 1001"
    engine.make_directory("tree", "/srv", mode=0o700)  # existing: kept
    engine.push_files("tree", [RootfsFile("/srv/a", b"1\n", uid=1000)])
    engine.push_files("tree", [RootfsFile("/srv/a", b"2\n", append=True)])
    assert run(engine, "tree", "cat", "/srv/a") == "1\n2"
    assert run(engine, "tree", "stat", "-c", "%u", "/srv/a") == "1000"
    engine.make_symlink("tree", "/srv/link", "a", uid=1000, gid=1000)
    assert run(engine, "tree", "cat", "/srv/link") == "1\n2"
    assert run(engine, "tree", "stat", "-c", "%u", "/srv/link") == "1000"
    assert engine.pull_file("tree", "/srv/link").data == b"a"

    with pytest.raises(errors.DirectoryNotEmpty):
        engine.delete_file("tree", "/srv")
    engine.delete_file("tree", "/srv/link")
    assert run(engine, "tree", "cat", "/srv/a") == "1\n2"
    engine.delete_file("tree", "/srv/a")
    engine.delete_file("tree", "/srv")
    assert "srv" not in run(engine, "tree", "ls", "/").split()
    with pytest.raises(errors.PathNotFound):
        engine.delete_file("tree", "/srv")


def test_links_made_inside_lead_nowhere(engine, image, tmp_path):
    """The tenant points links at / and climbs with '..': every change
    through them is refused and the host is untouched."""
    engine.launch("linky2", "busybox")
    mark = f"nlxt-{uuid.uuid4().hex[:8]}"
    host_dir = tmp_path / mark
    host_dir.mkdir()
    (host_dir / "keep").write_bytes(b"host")
    run(engine, "linky2", "ln", "-s", "/", "/root-link")
    run(engine, "linky2", "ln", "-s", str(tmp_path), "/abs-link")
    run(engine, "linky2", "ln", "-s", "../../../../..", "/up-link")
    for link in ("/root-link", "/abs-link", "/up-link"):
        for path in (f"{link}/{mark}/new", f"{link}{tmp_path}/{mark}/new"):
            with pytest.raises(errors.InvalidInput, match="symlink"):
                engine.make_directory("linky2", path)
            with pytest.raises(errors.InvalidInput, match="symlink"):
                engine.make_symlink("linky2", path, "/etc/shadow")
        with pytest.raises(errors.InvalidInput, match="symlink"):
            engine.delete_file("linky2", f"{link}/{mark}/keep")
    with pytest.raises(errors.InvalidInput):
        engine.delete_file("linky2", f"/../../{tmp_path}/{mark}/keep")
    assert [p.name for p in host_dir.iterdir()] == ["keep"]
    engine.delete_file("linky2", "/abs-link")  # the link itself only
    assert (host_dir / "keep").read_bytes() == b"host"
