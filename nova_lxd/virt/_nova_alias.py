"""Make this driver importable as ``nova.virt.lxd``.

Nova loads ``'nova.virt.' + CONF.compute_driver`` and nothing else (a
dotted path outside ``nova.virt`` makes nova-compute exit), so the
driver module is put into ``sys.modules`` under that key. One key is
set and can be removed again, which tests need; nothing is written
into nova's installed tree, which editable installs and DevStack need.
The ``nova-compute-lxd`` console script calls :func:`register` and then
nova-compute's own ``main``; configure ``compute_driver = lxd.LXCDriver``.
"""

from __future__ import annotations

import sys

ALIAS = "lxd"
MODULE = "nova.virt." + ALIAS
COMPUTE_DRIVER = ALIAS + ".LXCDriver"
"""The ``[DEFAULT] compute_driver`` value."""


def register() -> str:
    """Alias the driver module; returns the ``sys.modules`` key."""
    from nova_lxd.virt import driver

    sys.modules[MODULE] = driver
    return MODULE


def unregister() -> None:
    sys.modules.pop(MODULE, None)
