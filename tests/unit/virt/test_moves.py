"""Same-host resize and storage checks of LXCDriver, engine mocked."""

from __future__ import annotations

import json
import types
from unittest import mock

import pytest
from nova import exception

from nova_lxd.client.local import DaemonError
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


OFFER_ENV = {"environment": {"addresses": ["10.0.0.9:8443",
                                          "192.0.2.1:8443"],
                             "certificate": "PEM"}}


@pytest.fixture
def daemon(drv):
    fake = mock.Mock()
    fake.get.return_value = OFFER_ENV
    fake.start.return_value = {"id": "op-1", "metadata": {
        "control": "c", "fs": "f"}}
    with mock.patch.object(driver.LXCDriver, "daemon",
                           new_callable=mock.PropertyMock,
                           return_value=fake):
        yield fake


def test_other_host_needs_https_before_anything(drv, daemon):
    daemon.get.return_value = {"environment": {}}
    with pytest.raises(exception.InstanceFaultRollback) as info:
        drv.migrate_disk_and_power_off(
            None, instance(), "elsewhere",
            types.SimpleNamespace(root_gb=2), [])
    assert "serves no HTTPS" in str(info.value.inner_exception)
    assert not drv.engine.method_calls
    daemon.start.assert_not_called()


def test_other_host_offers_then_stops(drv, daemon):
    drv.engine.status.return_value = "RUNNING"
    with mock.patch.object(drv, "get_host_ip_addr",
                           return_value="192.0.2.1"):
        offer = json.loads(drv.migrate_disk_and_power_off(
            None, instance(), "elsewhere",
            types.SimpleNamespace(root_gb=2), [], timeout=30))
    daemon.start.assert_called_once_with(
        "POST", "/1.0/instances/instance-0000000a", {"migration": True})
    # The address other hosts reach this one by (my_ip), pinned by PEM.
    assert offer == {"operation": "https://192.0.2.1:8443/1.0/operations/"
                                  "op-1",
                     "secrets": {"control": "c", "fs": "f"},
                     "certificate": "PEM"}
    drv.engine.stop.assert_called_once_with("instance-0000000a",
                                            timeout=30, force=False)


def test_failed_stop_withdraws_the_offer(drv, daemon):
    drv.engine.status.return_value = "RUNNING"
    drv.engine.stop.side_effect = driver.errors.OperationFailed(
        action="stop", name="x", reason="stuck")
    with pytest.raises(exception.InternalError):
        drv.migrate_disk_and_power_off(
            None, instance(), "elsewhere",
            types.SimpleNamespace(root_gb=2), [])
    daemon.request.assert_called_once_with("DELETE",
                                           "/1.0/operations/op-1")


def test_finish_fetches_the_offer_then_applies_the_flavor(drv, daemon):
    drv.engine.status.return_value = "STOPPED"
    offer = json.dumps({"operation": "https://a:1/1.0/operations/x",
                        "secrets": {"control": "c", "fs": "f"},
                        "certificate": "PEM"})
    with mock.patch.object(driver.vifs, "plug") as plug:
        drv.finish_migration(None, None, instance(3), offer, [], None,
                             True, {})
    plug.assert_called_once()
    daemon.start.assert_called_once_with("POST", "/1.0/instances", {
        "name": "instance-0000000a", "source": {
            "type": "migration", "mode": "pull",
            "operation": "https://a:1/1.0/operations/x",
            "secrets": {"control": "c", "fs": "f"},
            "certificate": "PEM"}})
    daemon.wait.assert_called_once()
    drv.engine.update.assert_called_once()
    drv.engine.start.assert_called_once_with("instance-0000000a")


def test_failed_fetch_unplugs_and_says_why(drv, daemon):
    daemon.wait.side_effect = DaemonError("The source failed: disk full")
    offer = json.dumps({"operation": "https://a:1/1.0/operations/x",
                        "secrets": {}, "certificate": "PEM"})
    with mock.patch.object(driver.vifs, "plug"), \
            mock.patch.object(driver.vifs, "unplug") as unplug:
        with pytest.raises(exception.ResizeError, match="disk full"):
            drv.finish_migration(None, None, instance(), offer, [], None,
                                 True, {})
    unplug.assert_called_once()
    drv.engine.update.assert_not_called()


def test_confirm_deletes_the_source_copy_only_between_hosts(drv):
    same = types.SimpleNamespace(source_compute="a", dest_compute="a")
    other = types.SimpleNamespace(source_compute="a", dest_compute="b")
    with mock.patch.object(driver.vifs, "unplug") as unplug:
        drv.confirm_migration(None, same, instance(), [])
        drv.engine.delete.assert_not_called()
        drv.confirm_migration(None, other, instance(), [])
    drv.engine.delete.assert_called_once_with("instance-0000000a",
                                              force=True)
    unplug.assert_called_once()


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
