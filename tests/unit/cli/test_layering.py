"""``nlxc`` speaks only HTTP: it never imports nova, the engine, the
daemon, the virt driver or privsep (so it runs on any workstation)."""

from __future__ import annotations

from pathlib import Path

import nova_lxd
from tests.unit.test_layering import _imports

FORBIDDEN = ("nova", "nova_lxd.engine", "nova_lxd.daemon", "nova_lxd.virt",
             "nova_lxd.privsep", "nova_lxd.conf", "lxc", "oslo_config")


def test_cli_imports_no_server_side_code():
    package = Path(nova_lxd.__file__).parent / "cli"
    bad = []
    for path in sorted(package.rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                bad.append(f"{path.name}: {name}")
    assert not bad, bad
