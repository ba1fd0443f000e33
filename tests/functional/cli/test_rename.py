"""``nlxc rename`` and ``nlxc move`` on one remote."""

from __future__ import annotations

import json


def _names(nlxc) -> list[str]:
    return sorted(i["name"] for i in json.loads(
        nlxc.out("list", "--format", "json")))


def test_rename_and_move(nlxc, busybox_image):
    nlxc("launch", busybox_image, "r1")
    assert "running" in nlxc.fails("rename", "r1", "r2")
    nlxc("stop", "r1", "--force")
    nlxc("rename", "r1", "r2")
    assert "r2" in _names(nlxc) and "r1" not in _names(nlxc)
    nlxc("move", "r2", "local:r3")
    assert "r3" in _names(nlxc) and "r2" not in _names(nlxc)
    assert "elsewhere" in nlxc.fails("mv", "r3", "elsewhere:r4")
    assert "Invalid name" in nlxc.fails("rename", "r3", "bad_name")
    nlxc("delete", "r3")
