"""The CRIU probe: criu's own words in the refusal, probed once."""

from __future__ import annotations

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.containers import criu


@pytest.fixture(autouse=True)
def fresh_probe():
    criu.forget()
    yield
    criu.forget()


def fake(tmp_path, body: str):
    script = tmp_path / "criu"
    script.write_text("#!/bin/sh\necho run >> " + str(tmp_path / "runs")
                      + "\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_failing_check_is_quoted_and_probed_once(tmp_path):
    path = fake(tmp_path, """
echo 'Error (criu/util.c:642): exited, status=1' >&2
echo 'Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds' >&2
exit 1""")
    reason = criu.problem(path, "true")
    assert "vdso: Unexpected rt vDSO area bounds" in reason
    assert "exited, status" not in reason
    assert criu.problem(path, "true") == reason
    assert (tmp_path / "runs").read_text().count("run") == 1


def test_passing_check_and_missing_tools(tmp_path):
    assert criu.problem(fake(tmp_path, "exit 0"), "true") is None
    assert "not installed" in criu.problem(str(tmp_path / "none"), "true")
    assert "lxc-checkpoint" in criu.problem(
        fake(tmp_path, "exit 0"), str(tmp_path / "lxc-checkpoint"))


def test_require_raises_typed_error(monkeypatch):
    monkeypatch.setattr(criu, "problem", lambda: "criu says no")
    with pytest.raises(errors.StatefulSnapshotUnsupported,
                       match="c1: criu says no.*stateful=False"):
        criu.require("c1")
