"""LXCDriver against a mocked engine: the translation, not the engine."""

from __future__ import annotations

import sys
import types
from unittest import mock

import pytest
from nova import exception
from nova.compute import power_state

from nova_lxd.engine import errors
from nova_lxd.engine.containers.records import ContainerRecord
from nova_lxd.engine.nics import Nic
from nova_lxd.virt import _nova_alias, driver

UUID = "c0ffee00-0000-4000-8000-0000000000aa"
VIF = {"id": "p1", "active": True, "vnic_type": "normal"}


def instance(name="instance-0000000a", uuid=UUID, extra_specs=None):
    return types.SimpleNamespace(
        name=name, uuid=uuid, hostname="web-1",
        flavor=types.SimpleNamespace(name="m1.small", vcpus=2,
                                     memory_mb=512, root_gb=1,
                                     extra_specs=extra_specs or {}))


@pytest.fixture
def drv(tmp_path):
    d = driver.LXCDriver(virtapi=mock.MagicMock())
    d.engine = mock.Mock()  # replaces the cached privsep proxy
    d.engine.config.root = tmp_path
    with mock.patch.object(driver.metadata, "seed_files",
                           return_value=["seed"]), \
            mock.patch.object(driver.vifs, "plug", return_value=[]), \
            mock.patch.object(driver.vifs, "unplug"):
        yield d


@pytest.mark.parametrize("name,expected", [
    ("instance-0000000a", "instance-0000000a"),
    ("Instance_0000000A", "instance-0000000a"),
    ("1b2c-uuid", "i-1b2c-uuid"),
    ("x" * 70, "x" * 63),
    ("a" * 62 + "_b", "a" * 62),
])
def test_container_name(name, expected):
    assert driver.container_name(instance(name)) == expected


@pytest.mark.parametrize("status,expected", [
    ("RUNNING", power_state.RUNNING),
    ("STOPPED", power_state.SHUTDOWN),
    ("FROZEN", power_state.PAUSED),
    ("STARTING", power_state.NOSTATE),
])
def test_get_info_maps_states(drv, status, expected):
    drv.engine.status.return_value = status
    assert drv.get_info(instance()).state == expected


def test_get_info_unknown_raises_instance_not_found(drv):
    drv.engine.status.side_effect = errors.ContainerNotFound(name="x")
    with pytest.raises(exception.InstanceNotFound):
        drv.get_info(instance())


def test_destroy_missing_succeeds_and_unplugs(drv):
    inst = instance()
    drv.engine.delete.side_effect = errors.ContainerNotFound(name=inst.name)
    drv.destroy(None, inst, network_info=["vif"])
    drv.engine.delete.assert_called_once_with(inst.name, force=True)
    driver.vifs.unplug.assert_called_once_with(inst, ["vif"])


def test_list_instance_uuids_only_for_nova_containers(drv):
    drv.engine.list.return_value = [
        ContainerRecord(name="instance-00000001", image="f",
                        metadata={driver.UUID_KEY: "uuid-1"}),
        ContainerRecord(name="not-nova", image="f")]
    assert drv.list_instances() == ["instance-00000001", "not-nova"]
    assert drv.list_instance_uuids() == ["uuid-1"]


def test_instance_exists(drv):
    drv.engine.get.side_effect = [mock.Mock(),
                                  errors.ContainerNotFound(name="x")]
    assert drv.instance_exists(instance())
    assert not drv.instance_exists(instance())


def test_spawn_launches_imported_image(drv):
    inst = instance()
    image = mock.Mock(fingerprint="ab" * 32, unpacked_size=1024,
                      properties={})
    with mock.patch.object(driver.glance, "ensure_image",
                           return_value=image) as ensure:
        drv.spawn("ctx", inst, "meta", [], None, {})
    ensure.assert_called_once_with(drv.engine, "ctx", "meta",
                                   drv.download_dir)
    drv.engine.launch.assert_called_once_with(
        inst.name, image.fingerprint,
        limits={"limits.cpu": "2", "limits.memory": "512MiB"},
        privileged=False, nesting=False, isolated_idmap=True,
        root_disk=1024 ** 3, hostname="web-1",
        metadata={driver.UUID_KEY: inst.uuid}, nics=[], files=["seed"],
        stateful=False)


def test_spawn_powered_off_only_creates(drv):
    with mock.patch.object(driver.glance, "ensure_image"):
        drv.spawn("ctx", instance(), "meta", [], None, {}, power_on=False)
    drv.engine.create.assert_called_once()
    drv.engine.launch.assert_not_called()


def test_spawn_refused_flavor_fails_before_download(drv):
    inst = instance(extra_specs={"lxc:privileged": "true"})
    with mock.patch.object(driver.glance, "ensure_image") as ensure:
        # InvalidInput: nova aborts the build rather than rescheduling.
        with pytest.raises(exception.InvalidInput,
                           match="lxc:privileged"):
            drv.spawn("ctx", inst, "meta", [], None, {})
    ensure.assert_not_called()


def test_spawn_failure_is_nova_error_and_undone(drv):
    inst = instance()
    drv.engine.launch.side_effect = errors.StartFailed(name=inst.name,
                                                       reason="boom")
    drv.engine.delete.side_effect = errors.ContainerNotFound(name="x")
    with mock.patch.object(driver.glance, "ensure_image"):
        with pytest.raises(exception.InstanceDeployFailure):
            drv.spawn("ctx", inst, "meta", [], None, {},
                      network_info=[VIF])
    drv.engine.delete.assert_called_once_with(inst.name, force=True)
    driver.vifs.unplug.assert_called_once_with(inst, [VIF])


def test_spawn_waits_for_vif_plugged_of_ports_down(drv):
    down = dict(VIF, id="p2", active=False)
    with mock.patch.object(driver.glance, "ensure_image"):
        drv.spawn("ctx", instance(), "meta", [], None, {},
                  network_info=[VIF, down])
    events = drv.virtapi.wait_for_instance_event.call_args.args[1]
    assert events == [("network-vif-plugged", "p2")]


def test_spawn_vif_timeout_is_fatal_and_undone(drv):
    inst = instance()
    drv.virtapi.wait_for_instance_event.return_value.__exit__.side_effect \
        = exception.InstanceEventTimeout()
    with mock.patch.object(driver.glance, "ensure_image"):
        with pytest.raises(exception.VirtualInterfaceCreateException):
            drv.spawn("ctx", inst, "meta", [], None, {},
                      network_info=[dict(VIF, active=False)])
    drv.engine.delete.assert_called_once_with(inst.name, force=True)


def test_spawn_bad_image_is_image_unacceptable(drv):
    meta = types.SimpleNamespace(id="img")
    with mock.patch.object(driver.glance, "ensure_image",
                           side_effect=errors.InvalidImage(source="x",
                                                           reason="bad")):
        with pytest.raises(exception.ImageUnacceptable):
            drv.spawn("ctx", instance(), meta, [], None, {})
    drv.engine.launch.assert_not_called()


def test_console_output(drv):
    drv.engine.console_log.return_value = "booted\n"
    assert drv.get_console_output(None, instance()) == b"booted\n"
    drv.engine.console_log.return_value = "systemd \u2026 \u25cf\n"
    assert drv.get_console_output(None, instance()).decode() == \
        "systemd \u2026 \u25cf\n"


def test_image_larger_than_the_root_disk_is_refused(drv):
    inst = instance()  # root_gb=1
    image = mock.Mock(fingerprint="ab" * 32, unpacked_size=2 * 1024 ** 3,
                      properties={})
    with mock.patch.object(driver.glance, "ensure_image",
                           return_value=image):
        with pytest.raises(exception.FlavorDiskSmallerThanImage):
            drv.spawn("ctx", inst, "meta", [], None, {})
    drv.engine.launch.assert_not_called()


def test_interrupted_builds_get_a_fault(drv):
    building = types.SimpleNamespace(uuid="b", vm_state="building",
                                     task_state="spawning")
    active = types.SimpleNamespace(uuid="a", vm_state="active",
                                   task_state=None)
    with mock.patch.object(driver.compute_utils,
                           "add_instance_fault_from_exc") as fault:
        assert drv.process_instances_at_startup(
            "ctx", [building, active]) == [building, active]
    [(args, _kw)] = fault.call_args_list
    assert args[1] is building
    assert "restarted while the server was being built" in str(args[2])


def test_alias_loads_like_nova_does():
    key = _nova_alias.register()
    try:
        __import__(key)
        assert sys.modules[key].LXCDriver is driver.LXCDriver
        assert _nova_alias.COMPUTE_DRIVER == "lxd.LXCDriver"
    finally:
        _nova_alias.unregister()
    assert key not in sys.modules


def _status(drv, status):
    drv.engine.status.return_value = status


def test_power_off_hard_and_clean(drv):
    _status(drv, "RUNNING")
    drv.power_off(instance())
    drv.engine.stop.assert_called_with("instance-0000000a", timeout=0,
                                       force=True)
    drv.power_off(instance(), timeout=60)
    drv.engine.stop.assert_called_with("instance-0000000a", timeout=60,
                                       force=False)


def test_power_off_stopped_is_noop(drv):
    _status(drv, "STOPPED")
    drv.power_off(instance())
    drv.engine.stop.assert_not_called()


@pytest.mark.parametrize("status,call", [
    ("STOPPED", "start"), ("FROZEN", "unfreeze"), ("RUNNING", None)])
def test_power_on(drv, status, call):
    _status(drv, status)
    drv.power_on(None, instance(), [])
    for name in ("start", "unfreeze"):
        assert getattr(drv.engine, name).called == (name == call)


@pytest.mark.parametrize("kind,force", [("SOFT", False), ("HARD", True)])
def test_reboot(drv, kind, force):
    drv.reboot(None, instance(), [], kind)
    drv.engine.restart.assert_called_once_with("instance-0000000a",
                                               force=force)


def test_engine_errors_become_nova_errors(drv):
    drv.engine.freeze.side_effect = errors.InvalidState(
        action="freeze", name="x", status="stopped")
    with pytest.raises(exception.InternalError):
        drv.pause(instance())
    drv.engine.unfreeze.side_effect = errors.ContainerNotFound(name="x")
    with pytest.raises(exception.InstanceNotFound):
        drv.unpause(instance())


def test_resume_state_on_host_boot_starts(drv):
    _status(drv, "STOPPED")
    drv.resume_state_on_host_boot(None, instance(), [], None)
    drv.engine.start.assert_called_once_with("instance-0000000a")


def test_manage_image_cache_prunes(drv):
    drv.engine.prune_images.return_value = []
    drv.manage_image_cache(None, [])
    drv.engine.prune_images.assert_called_once_with()
    assert drv.capabilities["has_imagecache"]


def test_spawn_puts_the_flavor_rates_on_every_port(drv):
    inst = instance(extra_specs={"quota:vif_inbound_average": "1000",
                                 "quota:vif_inbound_burst": "64"})
    plugged = [Nic("eth0", "tap1"), Nic("eth1", "tap2")]
    with mock.patch.object(driver.glance, "ensure_image"), \
            mock.patch.object(driver.vifs, "plug", return_value=plugged):
        drv.spawn("ctx", inst, "meta", [], None, {}, network_info=[VIF])
    nics = drv.engine.launch.call_args.kwargs["nics"]
    assert [n.host_name for n in nics] == ["tap1", "tap2"]
    assert {(n.ingress, n.ingress_burst, n.egress) for n in nics} == {
        (1000 * 1024 * 8, 64 * 1024, None)}


def test_host_ip_and_uptime(drv):
    driver.CONF.set_override("my_ip", "192.0.2.7")
    try:
        assert drv.get_host_ip_addr() == "192.0.2.7"
    finally:
        driver.CONF.clear_override("my_ip")
    # The real command: nova shows its output as it is.
    assert "load average" in drv.get_host_uptime()


@pytest.mark.parametrize("spec,option", [
    ("lxc:nesting", "allow_nesting_flavors"),
    ("lxc:privileged", "allow_privileged_flavors"),
])
def test_isolation_switches_follow_the_operator(drv, spec, option):
    inst = instance(extra_specs={spec: "true"})
    with mock.patch.object(driver.glance, "ensure_image"):
        with pytest.raises(exception.InvalidInput, match=spec):
            drv.spawn("ctx", inst, "meta", [], None, {})
        driver.CONF.set_override(option, True, group="lxc")
        try:
            drv.spawn("ctx", inst, "meta", [], None, {})
        finally:
            driver.CONF.clear_override(option, group="lxc")
    kwargs = drv.engine.launch.call_args.kwargs
    assert kwargs[spec.split(":")[1]] is True


def test_builds_interrupted_before_their_claim_are_found(drv):
    drv._host = "compute1"
    node = types.SimpleNamespace(uuid="rp1")
    client = mock.Mock()
    client.get_allocations_for_resource_provider.return_value = \
        types.SimpleNamespace(allocations={"known": {}, "lost": {}})
    lost = types.SimpleNamespace(uuid="lost", vm_state="building",
                                 task_state=None)
    with mock.patch.object(driver.objects.ComputeNodeList,
                           "get_all_by_host", return_value=[node]), \
            mock.patch.object(driver.report, "report_client_singleton",
                              return_value=client), \
            mock.patch.object(driver.objects.InstanceList,
                              "get_by_filters",
                              return_value=[lost]) as query, \
            mock.patch.object(driver.compute_utils,
                              "add_instance_fault_from_exc") as fault:
        drv.process_instances_at_startup("ctx", [])
    assert query.call_args.args[1]["uuid"] in (["known", "lost"],
                                               ["lost", "known"])
    assert fault.call_args.args[1] is lost


def test_disk_image_declaring_more_than_the_root_disk_is_refused(drv):
    image = mock.Mock(fingerprint="ab" * 32, unpacked_size=1024,
                      properties={"source_virtual_size": 2 * 1024 ** 3})
    with mock.patch.object(driver.glance, "ensure_image",
                           return_value=image):
        with pytest.raises(exception.FlavorDiskSmallerThanImage):
            drv.spawn("ctx", instance(), "meta", [], None, {})
