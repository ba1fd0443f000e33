import sys
from unittest import mock

from nova_lxd.cmd import compute
from nova_lxd.virt import _nova_alias


def test_main_registers_driver_before_nova_compute():
    seen = {}

    def nova_main():
        seen["module"] = sys.modules.get(_nova_alias.MODULE)

    try:
        with mock.patch.object(compute.nova.cmd.compute, "main", nova_main):
            compute.main()
    finally:
        _nova_alias.unregister()
    assert seen["module"].LXCDriver.__name__ == "LXCDriver"
