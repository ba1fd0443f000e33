"""Recorded exec output: names checked before any path is built, the
number of files kept per container bounded."""

from __future__ import annotations

import pytest

from nova_lxd.engine.containers import exec_logs
from nova_lxd.engine.containers.records import ContainerPaths


def test_write_read_delete_and_bad_names(tmp_path):
    paths = ContainerPaths(tmp_path / "c1")
    out, err = exec_logs.write(paths, b"o", b"e")
    assert exec_logs.list_files(paths) == [err, out]  # same stem
    assert exec_logs.read(paths, out) == b"o"
    assert (paths.directory / exec_logs.DIRECTORY / out).stat().st_mode \
        & 0o777 == 0o600
    (paths.directory / "record.json").write_text("{}")
    for bad in ("../record.json", "record.json", "exec_1.stdout",
                f"{out}/..", "", None):
        with pytest.raises(exec_logs.ExecLogNotFound):
            exec_logs.read(paths, bad)
        with pytest.raises(exec_logs.ExecLogNotFound):
            exec_logs.delete(paths, bad)
    exec_logs.delete(paths, out)
    assert exec_logs.list_files(paths) == [err]
    with pytest.raises(exec_logs.ExecLogNotFound):
        exec_logs.read(paths, out)


def test_oldest_files_go_beyond_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(exec_logs, "MAX_LOGS", 4)
    paths = ContainerPaths(tmp_path / "c1")
    written = [exec_logs.write(paths, b"", b"") for _ in range(3)]
    kept = set(exec_logs.list_files(paths))
    assert len(kept) == 4
    assert set(written[-1]) <= kept and set(written[-2]) <= kept
    assert not set(written[0]) & kept
