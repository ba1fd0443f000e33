"""``nova-compute-lxd``: nova-compute with the nova-lxd driver loadable.

``nova.cmd.compute`` is imported first: its package monkey-patches (or
selects native threads) before anything else of nova is imported, as
nova-compute itself does.
"""

from __future__ import annotations

import nova.cmd.compute  # noqa: I001 -- first: nova's monkey patching

from nova_lxd.virt import _nova_alias


def main() -> None:
    _nova_alias.register()
    nova.cmd.compute.main()
