"""Live migration in LXCDriver, the engine and the daemon mocked at the
boundary: the pre-checks, the stateful switch, the push, post and
rollback."""

from __future__ import annotations

import json
import types
from unittest import mock

import pytest
from nova import exception
from nova.objects import migrate_data as nova_migrate_data

from nova_lxd.client.local import DaemonError
from nova_lxd.engine import errors
from nova_lxd.virt import driver, live_migration

NAME = "instance-0000000a"
ENV = {"environment": {"addresses": ["10.0.0.9:8443", "192.0.2.2:8443"],
                       "certificate": "DEST-PEM"}}
TARGET = json.dumps({"operation": "https://192.0.2.2:8443/1.0/operations/"
                                  "op-9",
                     "secrets": {"control": "c", "fs": "f"},
                     "certificate": "DEST-PEM"})


def instance(extra_specs=None):
    return types.SimpleNamespace(
        name=NAME, uuid="u", hostname="h",
        flavor=types.SimpleNamespace(name="f", vcpus=1, memory_mb=256,
                                     root_gb=1,
                                     extra_specs=extra_specs or {}))


@pytest.fixture
def drv():
    d = driver.LXCDriver(virtapi=mock.MagicMock())
    d.engine = mock.Mock()
    d.engine.stateful_snapshot_problem.return_value = None
    d.engine.get.return_value = mock.Mock(stateful=True)
    d.engine.status.return_value = "RUNNING"
    d._host = "compute1"
    with mock.patch.object(live_migration.vifs, "plug"), \
            mock.patch.object(live_migration.vifs, "unplug"), \
            mock.patch.object(driver.LXCDriver, "get_host_ip_addr",
                              return_value="192.0.2.2"):
        yield d


@pytest.fixture
def daemon(drv):
    fake = mock.Mock()
    fake.get.return_value = ENV
    fake.start.return_value = {"id": "op-9", "metadata": {
        "control": "c", "fs": "f"}}
    with mock.patch.object(driver.LXCDriver, "daemon",
                           new_callable=mock.PropertyMock,
                           return_value=fake):
        yield fake


def dest_data(drv, block_migration=None):
    return drv.check_can_live_migrate_destination(
        None, instance(), {}, {}, block_migration, False)


# -- the flavor switch ----------------------------------------------------

def test_stateful_flavor_creates_stateful_container(drv):
    with mock.patch.object(driver.glance, "ensure_image") as ensure, \
            mock.patch.object(driver.metadata, "seed_files",
                              return_value=[]):
        ensure.return_value.unpacked_size = 1
        ensure.return_value.properties = {}
        drv.spawn("ctx", instance({"lxc:stateful": "true"}), "meta", [],
                  None, {})
    assert drv.engine.launch.call_args.kwargs["stateful"] is True


# -- pre-checks -------------------------------------------------------------

def test_destination_refuses_without_criu(drv):
    drv.engine.stateful_snapshot_problem.return_value = "vdso: bounds"
    with pytest.raises(exception.MigrationPreCheckError) as info:
        dest_data(drv)
    assert "needs CRIU" in str(info.value)
    assert "vdso: bounds" in str(info.value)
    assert "compute1" in str(info.value)


@pytest.mark.parametrize("block_migration", [None, True])
def test_destination_data_is_a_non_shared_block_migration(
        drv, block_migration):
    data = dest_data(drv, block_migration)
    assert isinstance(data, live_migration.LXCLiveMigrateData)
    # What Nova 34 reads to clean up after a non-shared block migration.
    assert isinstance(data, nova_migrate_data.LibvirtLiveMigrateData)
    assert data.block_migration is True
    assert not data.is_shared_block_storage
    assert not data.is_shared_instance_path
    assert data.target is None


def test_destination_refuses_shared_storage_migration(drv):
    with pytest.raises(exception.MigrationPreCheckError) as info:
        dest_data(drv, block_migration=False)
    assert "block_migration" in str(info.value)


def test_migrate_data_survives_rpc(drv):
    data = dest_data(drv)
    data.target = TARGET
    prim = data.obj_to_primitive()
    back = live_migration.LXCLiveMigrateData.obj_from_primitive(prim)
    assert back.target == TARGET
    assert back.block_migration is True
    assert "op-9" not in repr(back)            # the secrets stay out of logs


def test_source_accepts_a_stateful_running_container(drv):
    data = dest_data(drv)
    assert drv.check_can_live_migrate_source(None, instance(), data) is data
    drv.engine.get.assert_called_once_with(NAME)


def test_source_refuses_a_container_not_stateful(drv):
    drv.engine.get.return_value = mock.Mock(stateful=False)
    with pytest.raises(exception.MigrationPreCheckError) as info:
        drv.check_can_live_migrate_source(None, instance(), dest_data(drv))
    assert "lxc:stateful=true" in str(info.value)
    assert "cold migration" in str(info.value)


def test_source_refuses_a_paused_container(drv):
    drv.engine.status.return_value = "FROZEN"
    with pytest.raises(exception.MigrationPreCheckError) as info:
        drv.check_can_live_migrate_source(None, instance(), dest_data(drv))
    assert "frozen, not running" in str(info.value)


def test_source_refuses_without_criu(drv):
    data = dest_data(drv)
    drv.engine.stateful_snapshot_problem.return_value = "no criu"
    with pytest.raises(exception.MigrationPreCheckError) as info:
        drv.check_can_live_migrate_source(None, instance(), data)
    assert "no criu" in str(info.value)


def test_source_refuses_a_missing_container(drv):
    drv.engine.get.side_effect = errors.ContainerNotFound(name=NAME)
    with pytest.raises(exception.MigrationPreCheckError):
        drv.check_can_live_migrate_source(None, instance(), dest_data(drv))


def test_no_disks_to_describe(drv):
    assert json.loads(drv.get_instance_disk_info(instance())) == []


# -- the move -------------------------------------------------------------

def test_pre_live_migration_plugs_and_waits_for_a_push(drv, daemon):
    inst, data = instance(), dest_data(drv)
    out = drv.pre_live_migration(None, inst, {}, ["vif"], None, data)
    live_migration.vifs.plug.assert_called_once_with(inst, ["vif"])
    daemon.start.assert_called_once_with("POST", "/1.0/instances", {
        "name": NAME, "source": {"type": "migration", "mode": "push"}})
    # The address matching my_ip, the op's secrets, this daemon's PEM.
    assert json.loads(out.target) == json.loads(TARGET)


def test_pre_live_migration_failure_unplugs(drv, daemon):
    daemon.start.side_effect = DaemonError("Instance exists", 409)
    inst = instance()
    with pytest.raises(exception.MigrationError) as info:
        drv.pre_live_migration(None, inst, {}, ["vif"], None,
                               dest_data(drv))
    assert "Instance exists" in str(info.value)
    live_migration.vifs.unplug.assert_called_once_with(inst, ["vif"])


def test_pre_live_migration_needs_https(drv, daemon):
    daemon.get.return_value = {"environment": {}}
    with pytest.raises(exception.MigrationError) as info:
        drv.pre_live_migration(None, instance(), {}, [], None,
                               dest_data(drv))
    assert "serves no HTTPS" in str(info.value)
    daemon.start.assert_not_called()


def _moved(drv, daemon, data):
    post, recover = mock.Mock(), mock.Mock()
    inst = instance()
    drv.live_migration("ctx", inst, "compute2", post, recover, True, data)
    return inst, post, recover


def test_live_migration_pushes_then_posts(drv, daemon):
    data = dest_data(drv)
    data.target = TARGET
    op = {"id": "op-1", "metadata": {}}
    daemon.start.return_value = op
    inst, post, recover = _moved(drv, daemon, data)
    daemon.start.assert_called_once_with(
        "POST", f"/1.0/instances/{NAME}",
        {"migration": True, "live": True, "target": json.loads(TARGET)})
    daemon.wait.assert_called_once_with(op, mock.ANY)
    post.assert_called_once_with("ctx", inst, "compute2", True, data)
    recover.assert_not_called()


def test_live_migration_failure_recovers_without_raising(drv, daemon):
    data = dest_data(drv)
    data.target = TARGET
    daemon.wait.side_effect = DaemonError("restore failed: criu said no")
    inst, post, recover = _moved(drv, daemon, data)
    recover.assert_called_once_with("ctx", inst, "compute2", data)
    post.assert_not_called()


def test_live_migration_refused_by_the_daemon_recovers(drv, daemon):
    data = dest_data(drv)
    data.target = TARGET
    daemon.start.side_effect = DaemonError("Live migration is not "
                                           "implemented yet", 400)
    _inst, post, recover = _moved(drv, daemon, data)
    recover.assert_called_once()
    post.assert_not_called()


def test_live_migration_without_target_recovers(drv, daemon):
    _inst, post, recover = _moved(drv, daemon, dest_data(drv))
    daemon.start.assert_not_called()
    recover.assert_called_once()
    post.assert_not_called()


def test_abort_not_supported(drv):
    with pytest.raises(NotImplementedError):
        drv.live_migration_abort(instance())


# -- after --------------------------------------------------------------

def test_post_live_migration_deletes_the_source_container(drv):
    drv.post_live_migration(None, instance(), {}, None)
    drv.engine.delete.assert_called_once_with(NAME, force=True)
    drv.engine.delete.side_effect = errors.ContainerNotFound(name=NAME)
    drv.post_live_migration(None, instance(), {}, None)


def test_post_live_migration_at_source_unplugs(drv):
    inst = instance()
    drv.post_live_migration_at_source(None, inst, ["vif"])
    live_migration.vifs.unplug.assert_called_once_with(inst, ["vif"])


def test_post_at_destination_leaves_the_container_running(drv):
    drv.post_live_migration_at_destination(None, instance(), ["vif"])
    assert not drv.engine.method_calls
    live_migration.vifs.unplug.assert_not_called()


def test_rollback_at_destination_withdraws_removes_unplugs(drv, daemon):
    data = dest_data(drv)
    data.target = TARGET
    drv.engine.delete.side_effect = errors.ContainerNotFound(name=NAME)
    inst = instance()
    drv.rollback_live_migration_at_destination(None, inst, ["vif"], {},
                                               migrate_data=data)
    daemon.request.assert_called_once_with("DELETE",
                                           "/1.0/operations/op-9")
    drv.engine.delete.assert_called_once_with(NAME, force=True)
    live_migration.vifs.unplug.assert_called_once_with(inst, ["vif"])


def test_rollback_at_destination_before_any_receive(drv, daemon):
    inst = instance()
    drv.rollback_live_migration_at_destination(
        None, inst, ["vif"], {}, destroy_disks=False,
        migrate_data=dest_data(drv))
    daemon.request.assert_not_called()
    # Storage is never shared: a copy here goes whatever nova says.
    drv.engine.delete.assert_called_once_with(NAME, force=True)
    live_migration.vifs.unplug.assert_called_once_with(inst, ["vif"])


def test_rollback_tolerates_a_finished_receive(drv, daemon):
    data = dest_data(drv)
    data.target = TARGET
    daemon.request.side_effect = DaemonError("already finished", 400)
    drv.engine.delete.side_effect = errors.ContainerNotFound(name=NAME)
    drv.rollback_live_migration_at_destination(None, instance(), [], {},
                                               migrate_data=data)
    live_migration.vifs.unplug.assert_called_once()
