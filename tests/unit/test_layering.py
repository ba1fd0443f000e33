"""Dependencies point one way: the engine never imports nova (or the
virt driver), so it stays usable by the daemon and tools without nova
installed. Checked on the source, by parsing every import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nova_lxd

PACKAGE = Path(nova_lxd.__file__).parent
FORBIDDEN = {
    "engine": ("nova", "nova_lxd.virt", "nova_lxd.privsep",
               "nova_lxd.daemon"),
    "daemon": ("nova", "nova_lxd.virt", "nova_lxd.privsep"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_import_upward(layer):
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".")
                   for f in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert not bad, f"{layer} imports upward:\n" + "\n".join(bad)
