"""Same-host resize and storage checks of LXCDriver, engine mocked."""

from __future__ import annotations

import types
from unittest import mock

import pytest
from nova import exception

from nova_lxd.virt import driver


def instance(root_gb=2):
    return types.SimpleNamespace(
        name="instance-0000000a", uuid="u", hostname="h",
        flavor=types.SimpleNamespace(name="f", vcpus=1, memory_mb=256,
                                     root_gb=root_gb, extra_specs={}))


@pytest.fixture
def drv():
    d = driver.LXCDriver(virtapi=mock.MagicMock())
    d.engine = mock.Mock()
    d._host = "compute1"
    return d


def test_shrink_refused_before_anything(drv):
    new = types.SimpleNamespace(root_gb=1)
    with pytest.raises(exception.InstanceFaultRollback) as info:
        drv.migrate_disk_and_power_off(None, instance(2), "compute1", new,
                                       [])
    assert "cannot shrink" in str(info.value.inner_exception)
    assert not drv.engine.method_calls


def test_other_host_refused_with_a_reason(drv):
    with pytest.raises(exception.InstanceFaultRollback) as info:
        drv.migrate_disk_and_power_off(
            None, instance(), "elsewhere",
            types.SimpleNamespace(root_gb=2), [])
    assert "another host" in str(info.value.inner_exception)


def test_finish_applies_the_flavor_live(drv):
    drv.engine.status.return_value = "RUNNING"
    drv.finish_migration(None, None, instance(3), "", [], None, True, {})
    drv.engine.update.assert_called_once_with(
        "instance-0000000a",
        limits={"limits.cpu": "1", "limits.memory": "256MiB"},
        root_disk=3 * 1024 ** 3)
    drv.engine.start.assert_not_called()


def test_destroy_keeping_disks_stops_only(drv):
    drv.engine.status.return_value = "RUNNING"
    with mock.patch.object(driver.vifs, "unplug"):
        drv.destroy(None, instance(), [], destroy_disks=False)
    drv.engine.delete.assert_not_called()
    drv.engine.stop.assert_called_once_with("instance-0000000a", force=True)


def test_shared_storage_check_round_trip(drv):
    drv.engine.storage_marker_create.return_value = "ab" * 16
    data = drv.check_instance_shared_storage_local(None, instance())
    drv.engine.storage_marker_exists.return_value = True
    assert drv.check_instance_shared_storage_remote(None, data)
    drv.check_instance_shared_storage_cleanup(None, data)
    drv.engine.storage_marker_remove.assert_called_once_with("ab" * 16)
