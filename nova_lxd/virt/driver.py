"""``LXCDriver``: Nova's compute driver for system containers.

Thin on purpose: each method turns Nova objects into calls on the engine
and engine errors into Nova exceptions. The engine runs behind the
project's privsep context (nova-compute itself is unprivileged); host
figures live in ``host``, image fetching in ``glance``, flavors in
``flavor``, ports in ``vifs``, cloud-init seeds in ``metadata``,
counters in ``diagnostics``.

Nova imports drivers as ``nova.virt.<compute_driver>``; see
``nova_lxd.virt._nova_alias`` for how this module gets there
(``[DEFAULT] compute_driver = lxd.LXCDriver``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nova.conf
from nova import context as nova_context
from nova import exception, objects
from nova.compute import power_state, task_states, vm_states
from nova.compute import utils as compute_utils
from nova.scheduler.client import report
from nova.virt import configdrive, driver, hardware
from oslo_concurrency import processutils
from oslo_log import log as logging

from nova_lxd import conf as lxd_conf
from nova_lxd.client.local import LocalDaemon
from nova_lxd.engine import errors, liblxc
from nova_lxd.engine.nics import Nic
from nova_lxd.privsep.proxy import PrivilegedEngine
from nova_lxd.virt import (
    diagnostics,
    flavor,
    glance,
    host,
    metadata,
    vifs,
)
from nova_lxd.virt.live_migration import LiveMigrationMixin
from nova_lxd.virt.moves import MovesMixin
from nova_lxd.virt.naming import container_name

__all__ = ["LXCDriver", "container_name"]

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# Reported as hypervisor_version: nova wants an integer.
HYPERVISOR_VERSION = 1
# The engine record key that ties a container to its Nova instance.
UUID_KEY = "nova.instance_uuid"

_POWER_STATES = {
    liblxc.RUNNING: power_state.RUNNING,
    liblxc.STOPPED: power_state.SHUTDOWN,
    liblxc.FROZEN: power_state.PAUSED,
    liblxc.FREEZING: power_state.PAUSED,
    liblxc.THAWED: power_state.RUNNING,
}
MiB = 1024 ** 2
_INTERRUPTED_TASKS = (task_states.REBUILDING, task_states.REBUILD_SPAWNING,
                      task_states.REBUILD_BLOCK_DEVICE_MAPPING,
                      task_states.SPAWNING)


@contextlib.contextmanager
def _instance_errors(instance: Any) -> Iterator[None]:
    """Engine errors as the Nova exceptions the compute manager handles:
    a missing container is a missing instance; a refused transition or a
    failed operation is an internal instance error."""
    try:
        yield
    except errors.ContainerNotFound:
        raise exception.InstanceNotFound(instance_id=instance.uuid) from None
    except errors.EngineError as exc:
        raise exception.InternalError(str(exc)) from exc


def _with_rates(nic: Nic, spec: flavor.ContainerSpec) -> Nic:
    """The flavor's ``quota:vif_*`` rates on every port."""
    return dataclasses.replace(
        nic, ingress=spec.nic_ingress, egress=spec.nic_egress,
        ingress_burst=spec.nic_ingress_burst,
        egress_burst=spec.nic_egress_burst)


class LXCDriver(MovesMixin, LiveMigrationMixin, driver.ComputeDriver):
    """Boots Nova instances as unprivileged system containers."""

    capabilities = dict(
        driver.ComputeDriver.capabilities,
        # Converted images stay in the engine's store for the next boot;
        # the periodic task prunes them (manage_image_cache).
        has_imagecache=True,
        # Rootfs tarballs are uploaded as raw/bare (Glance has no rootfs
        # format); real disk images are converted by the engine.
        supports_image_type_raw=True,
        supports_image_type_qcow2=True,
        supports_image_type_vmdk=True,
        supports_image_type_vdi=True,
        supports_image_type_vhdx=True,
        # Ports are plugged before the container is created; hot plug is
        # not implemented yet. suspend/resume freeze the processes
        # (memory stays in RAM): no stateful suspend until CRIU is used.
        supports_attach_interface=False,
        # Rebuilt from the image on another host (no storage is shared
        # between hosts: see ``check_instance_shared_storage_local``).
        supports_evacuate=True,
    )

    def __init__(self, virtapi: Any, read_only: bool = False) -> None:
        super().__init__(virtapi)
        lxd_conf.register_opts(CONF)
        self._host: str | None = None

    @functools.cached_property
    def engine(self) -> PrivilegedEngine:
        """Built on first use, not at load: tests swap CONF after
        import. Every call crosses into the privsep daemon."""
        return PrivilegedEngine(lxd_conf.engine_config(CONF))

    @property
    def daemon(self) -> LocalDaemon:
        """This host's nlxd, which moves containers to other hosts."""
        return LocalDaemon(CONF.lxc.daemon_socket or
                           self.engine.config.root / "daemon" / "unix.socket")

    @property
    def download_dir(self) -> Path:
        return Path(CONF.lxc.image_download_dir
                    or os.path.join(CONF.instances_path,
                                    "nova-lxd-downloads"))

    # -- host --------------------------------------------------------------

    def init_host(self, host: str) -> None:
        """Starts the privileged engine (which finishes or undoes
        operations a crash interrupted) and checks the host can run
        containers; nova-compute refuses to start otherwise."""
        self._host = host
        vifs.initialize()
        try:
            summary = self.engine.host
            problems = self.engine.host_problems()
        except errors.EngineError as exc:
            raise exception.NovaException(
                f"nova-lxd cannot use this host: {exc}") from exc
        if problems:
            raise exception.NovaException(
                "nova-lxd cannot use this host: " + "; ".join(problems))
        glance.remove_stale_downloads(self.download_dir)
        self._handle_deleted_instances()
        names = self.list_instances()
        LOG.info("nova-lxd engine at %s: %d cpus, %d MiB, %d containers, "
                 "AppArmor %s", self.engine.config.root, summary.cpu_count,
                 summary.memory_bytes // MiB, len(names),
                 "on" if summary.apparmor else "absent")

    def _handle_deleted_instances(self) -> None:
        """Containers of instances deleted while this service was down
        (the API then deletes locally) are handled at once, as
        ``[DEFAULT] running_deleted_instance_action`` says, rather than at
        the first run of nova's periodic task half an hour later."""
        action = CONF.running_deleted_instance_action
        by_uuid = {r.metadata[UUID_KEY]: r.name for r in self.engine.list()
                   if UUID_KEY in r.metadata}
        if action == "noop" or not by_uuid:
            return
        ctx = nova_context.get_admin_context(read_deleted="yes")
        deleted = objects.InstanceList.get_by_filters(
            ctx, {"uuid": list(by_uuid), "deleted": True,
                  "soft_deleted": False}, expected_attrs=["info_cache"])
        for instance in deleted:
            name = by_uuid[instance.uuid]
            LOG.warning("Container %s belongs to a deleted instance: %s",
                        name, action, instance=instance)
            try:
                if action == "reap":
                    self.engine.delete(name, force=True)
                    vifs.unplug(instance, instance.get_network_info())
                elif action == "shutdown":
                    self.engine.stop(name, force=True)
            except errors.EngineError as exc:
                LOG.error("Could not %s container %s: %s", action, name,
                          exc, instance=instance)

    def process_instances_at_startup(self, context: Any,
                                     instances: Any) -> Any:
        """Builds this service was running when it died get a fault that
        says so (nova then puts them in ERROR); the engine's recovery has
        already removed their half-made containers."""
        interrupted = [i for i in instances
                       if i.vm_state == vm_states.BUILDING
                       or i.task_state in _INTERRUPTED_TASKS]
        interrupted += self._unclaimed_builds(
            context, {i.uuid for i in instances})
        for instance in interrupted:
            compute_utils.add_instance_fault_from_exc(
                context, instance, exception.BuildAbortException(
                    instance_uuid=instance.uuid,
                    reason="nova-compute restarted while the server was "
                           "being built; delete it and boot it again"))
        return instances

    def _unclaimed_builds(self, context: Any, known: set[str]) -> list[Any]:
        """Builds interrupted before their claim set the host: only
        placement knows them (nova errors them out next, without a
        fault; the same search as its own)."""
        try:
            nodes = objects.ComputeNodeList.get_all_by_host(context,
                                                            self._host)
            client = report.report_client_singleton()
            consumers: set[str] = set()
            for node in nodes:
                consumers |= set(client.get_allocations_for_resource_provider(
                    context, node.uuid).allocations)
            if not consumers - known:
                return []
            return list(objects.InstanceList.get_by_filters(
                context, {"vm_state": vm_states.BUILDING,
                          "uuid": list(consumers - known)},
                expected_attrs=[]))
        except Exception as exc:  # a fault is a courtesy: never block init
            LOG.warning("Could not look for interrupted builds: %s", exc)
            return []

    def get_available_nodes(self, refresh: bool = False) -> list[str]:
        return [self._host or CONF.host]

    def get_available_resource(self, nodename: str) -> dict[str, Any]:
        return host.available_resource(self.engine, nodename,
                                       HYPERVISOR_VERSION)

    def update_provider_tree(self, provider_tree: Any, nodename: str,
                             allocations: Any = None) -> None:
        resources = self.get_available_resource(nodename)
        ratios = self._get_allocation_ratios(
            provider_tree.data(nodename).inventory)
        reserved = {
            "VCPU": CONF.reserved_host_cpus,
            "MEMORY_MB": CONF.reserved_host_memory_mb,
            "DISK_GB": self._get_reserved_host_disk_gb_from_config(),
        }
        provider_tree.update_inventory(
            nodename, host.inventory(resources, ratios, reserved))

    def get_host_ip_addr(self) -> str:
        return CONF.my_ip

    def get_host_uptime(self) -> str:
        out, _err = processutils.execute("env", "LANG=C", "uptime")
        return out.strip()

    # -- listing -----------------------------------------------------------

    def list_instances(self) -> list[str]:
        """Container names, which are the instances' names (see
        :func:`container_name`)."""
        return [record.name for record in self.engine.list()]

    def list_instance_uuids(self) -> list[str]:
        """Uuids of the containers this driver made (other engine users,
        such as the daemon, have none)."""
        uuids = (r.metadata.get(UUID_KEY) for r in self.engine.list())
        return [uuid for uuid in uuids if uuid]

    def instance_exists(self, instance: Any) -> bool:
        try:
            self.engine.get(container_name(instance))
        except errors.ContainerNotFound:
            return False
        return True

    def get_info(self, instance: Any, use_cache: bool = True
                 ) -> hardware.InstanceInfo:
        name = container_name(instance)
        with _instance_errors(instance):
            status = self.engine.status(name)
        return hardware.InstanceInfo(
            state=_POWER_STATES.get(status, power_state.NOSTATE),
            internal_id=name)

    # -- lifecycle ---------------------------------------------------------

    def spawn(self, context: Any, instance: Any, image_meta: Any,
              injected_files: Any, admin_password: Any, allocations: Any,
              network_info: Any = None, block_device_info: Any = None,
              power_on: bool = True, accel_info: Any = None) -> None:
        """Image, ports, container, then start; waits for Neutron's
        network-vif-plugged events like the libvirt driver, and undoes
        everything on failure (nova then reschedules or errors)."""
        name = container_name(instance)
        spec = self._container_spec(instance)
        image = self._ensure_image(context, image_meta)
        # The files, or the disk a disk image declares (as for a VM: a
        # flavor smaller than the image's disk is refused everywhere).
        needed = max(int(image.unpacked_size), int(
            (image.properties or {}).get("source_virtual_size") or 0))
        if spec.root_disk_bytes and needed > spec.root_disk_bytes:
            raise exception.FlavorDiskSmallerThanImage(
                flavor_size=spec.root_disk_bytes, image_size=needed)
        files = self._seed_files(context, instance, network_info,
                                 injected_files, admin_password)
        events = (vifs.plug_events(network_info)
                  if power_on and CONF.vif_plugging_timeout else [])
        try:
            with self.virtapi.wait_for_instance_event(
                    instance, events, timeout=CONF.vif_plugging_timeout,
                    error_callback=self._neutron_failed_callback):
                nics = [_with_rates(nic, spec)
                        for nic in vifs.plug(instance, network_info)]
                self._create(name, instance, image.fingerprint, spec, nics,
                             files, start=power_on)
        except exception.InstanceEventTimeout:
            if CONF.vif_plugging_is_fatal:
                self._undo_spawn(name, instance, network_info)
                raise exception.VirtualInterfaceCreateException() from None
            LOG.warning("Neutron sent no network-vif-plugged event in %s s;"
                        " the container runs anyway", CONF.
                        vif_plugging_timeout, instance=instance)
        except Exception:
            self._undo_spawn(name, instance, network_info)
            raise
        LOG.info("Container %s %s from image %s", name,
                 "started" if power_on else "created",
                 image.fingerprint[:12], instance=instance)

    def _ensure_image(self, context: Any, image_meta: Any) -> Any:
        try:
            return glance.ensure_image(self.engine, context, image_meta,
                                       self.download_dir)
        except errors.InvalidImage as exc:
            # The user sees this fault: say why, not where on the host.
            reason = exc.kwargs.get("reason") or str(exc)
            raise exception.ImageUnacceptable(image_id=image_meta.id,
                                              reason=reason) from exc

    def _seed_files(self, context: Any, instance: Any, network_info: Any,
                    injected_files: Any, admin_password: Any) -> list[Any]:
        """cloud-init's config drive, written into the rootfs."""
        return metadata.seed_files(instance, network_info, injected_files,
                                   admin_password, context=context)

    def _create(self, name: str, instance: Any, fingerprint: str,
                spec: flavor.ContainerSpec, nics: list[Any],
                files: list[Any], start: bool) -> None:
        create = self.engine.launch if start else self.engine.create
        try:
            create(name, fingerprint, limits=spec.limits,
                   privileged=spec.privileged, nesting=spec.nesting,
                   isolated_idmap=spec.isolated_idmap,
                   root_disk=spec.root_disk_bytes,
                   hostname=instance.hostname or None,
                   metadata={UUID_KEY: instance.uuid}, nics=nics,
                   files=files, stateful=spec.stateful)
        except errors.EngineError as exc:
            raise exception.InstanceDeployFailure(
                reason=str(exc), instance_id=instance.uuid) from exc

    def _undo_spawn(self, name: str, instance: Any,
                    network_info: Any) -> None:
        self._remove_leftover(name, instance, network_info, "a failed spawn")

    def _remove_leftover(self, name: str, instance: Any, network_info: Any,
                         after: str) -> bool:
        """Delete what ``after`` left (gone already is fine), unplug the
        ports; True when a container was removed."""
        removed = False
        try:
            self.engine.delete(name, force=True)
            removed = True
        except errors.ContainerNotFound:
            pass
        except errors.EngineError as exc:
            LOG.error("Could not remove container %s after %s: %s", name,
                      after, exc, instance=instance)
        vifs.unplug(instance, network_info)
        return removed

    def _neutron_failed_callback(self, event_name: str,
                                 instance: Any) -> None:
        LOG.error("Neutron reported failure on event %s", event_name,
                  instance=instance)
        if CONF.vif_plugging_is_fatal:
            raise exception.VirtualInterfaceCreateException()

    def _container_spec(self, instance: Any) -> flavor.ContainerSpec:
        """The flavor's limits and switches, checked before any download.
        Switches that weaken isolation only where the operator allows
        them (``[lxc] allow_*_flavors``)."""
        try:
            policy = flavor.Policy(
                allow_privileged=CONF.lxc.allow_privileged_flavors,
                allow_nesting=CONF.lxc.allow_nesting_flavors,
                allow_shared_idmap=CONF.lxc.allow_shared_idmap_flavors)
            return flavor.translate(instance.flavor, policy)
        except flavor.UnsupportedFlavor as exc:
            # InvalidInput aborts the build: another host would refuse the
            # flavor too, so no reschedule hides the reason.
            raise exception.InvalidInput(reason=str(exc)) from exc

    def destroy(self, context: Any, instance: Any, network_info: Any,
                block_device_info: Any = None, destroy_disks: bool = True,
                destroy_secrets: bool = True) -> None:
        """Kill and delete the container, unplug its ports; a missing
        container is already gone (nova destroys after failed spawns).
        ``destroy_disks`` False (storage shared with where the instance
        goes, e.g. a same-host resize being reverted) keeps the container,
        stopped: it is the instance's disk."""
        name = container_name(instance)
        try:
            if destroy_disks:
                self.engine.delete(name, force=True)
            elif self.engine.status(name) != liblxc.STOPPED:
                self.engine.stop(name, force=True)
        except errors.ContainerNotFound:
            LOG.debug("Container %s already gone", name, instance=instance)
        self.cleanup(context, instance, network_info, block_device_info,
                     destroy_disks)

    def cleanup(self, context: Any, instance: Any, network_info: Any,
                block_device_info: Any = None, destroy_disks: bool = True,
                migrate_data: Any = None, destroy_vifs: bool = True,
                destroy_secrets: bool = True) -> None:
        """The ports' host side; the container's files went with it."""
        if destroy_vifs:
            vifs.unplug(instance, network_info)

    # -- power -------------------------------------------------------------

    def power_off(self, instance: Any, timeout: int = 0,
                  retry_interval: int = 0) -> None:
        """Clean shutdown within ``timeout`` seconds, then kill; nova's
        ``timeout=0`` means a hard power off. The engine signals init
        once and waits the whole timeout (``retry_interval`` is for
        guests that ignore ACPI). Already off is fine."""
        name = container_name(instance)
        with _instance_errors(instance):
            if self.engine.status(name) == liblxc.STOPPED:
                return
            self.engine.stop(name, timeout=timeout, force=timeout <= 0)

    def power_on(self, context: Any, instance: Any, network_info: Any,
                 block_device_info: Any = None, accel_info: Any = None,
                 share_info: Any = None) -> None:
        name = container_name(instance)
        with _instance_errors(instance):
            status = self.engine.status(name)
            if status in (liblxc.FROZEN, liblxc.FREEZING):
                self.engine.unfreeze(name)
            elif status == liblxc.STOPPED:
                self.engine.start(name)

    def reboot(self, context: Any, instance: Any, network_info: Any,
               reboot_type: str, block_device_info: Any = None,
               bad_volumes_callback: Any = None, accel_info: Any = None,
               share_info: Any = None) -> None:
        """SOFT: the container's init halts its services first (up to
        ``[lxc] stop_timeout``); HARD: killed and started again."""
        with _instance_errors(instance):
            self.engine.restart(container_name(instance),
                                force=reboot_type == "HARD")

    def pause(self, instance: Any) -> None:
        with _instance_errors(instance):
            self.engine.freeze(container_name(instance))

    def unpause(self, instance: Any) -> None:
        with _instance_errors(instance):
            self.engine.unfreeze(container_name(instance))

    def rescue(self, context: Any, instance: Any, network_info: Any,
               image_meta: Any, rescue_password: Any,
               block_device_info: Any, share_info: Any) -> None:
        """The container boots the rescue image (nova's choice: the
        instance's own image unless one is given) with its rootfs
        mounted at /mnt/rescue; its rootfs is not otherwise changed."""
        name = container_name(instance)
        image = self._ensure_image(context, image_meta)
        with _instance_errors(instance):
            if self.engine.status(name) != liblxc.STOPPED:
                self.engine.stop(name, timeout=CONF.lxc.stop_timeout)
            self.engine.rescue(name, image.fingerprint)
            self.engine.start(name)

    def unrescue(self, context: Any, instance: Any) -> None:
        name = container_name(instance)
        with _instance_errors(instance):
            if self.engine.status(name) != liblxc.STOPPED:
                self.engine.stop(name, timeout=CONF.lxc.stop_timeout)
            self.engine.unrescue(name)
            self.engine.start(name)

    def suspend(self, context: Any, instance: Any) -> None:
        """Freezes the container (the cgroup freezer): processes stop,
        memory stays allocated on the host. A stateful suspend to disk
        needs CRIU, which this driver does not use yet."""
        self.pause(instance)

    def resume(self, context: Any, instance: Any, network_info: Any,
               block_device_info: Any = None, share_info: Any = None
               ) -> None:
        self.unpause(instance)

    def resume_state_on_host_boot(self, context: Any, instance: Any,
                                  network_info: Any, share_info: Any,
                                  block_device_info: Any = None) -> None:
        """After a host reboot nova asks for instances that should run."""
        self.power_on(context, instance, network_info, block_device_info)

    def manage_image_cache(self, context: Any, all_instances: Any) -> None:
        """Prune the image store to ``[lxc] image_cache_max_size``; the
        engine never removes an image a container uses."""
        removed = self.engine.prune_images()
        if removed:
            LOG.info("Pruned %d cached images", len(removed))

    def snapshot(self, context: Any, instance: Any, image_id: str,
                 update_task_state: Any) -> None:
        """The rootfs, snapshotted while the container runs (frozen for
        the pool's snapshot only), exported as a root tarball and
        streamed to Glance; booting that image gives the files back."""
        name = container_name(instance)
        snap = "nova-snapshot-" + image_id[:8]
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        with _instance_errors(instance):
            taken = self.engine.snapshot_create(name, snap)
            try:
                image = self.engine.snapshot_export(name, snap)
            finally:
                self.engine.snapshot_delete(name, snap)
        LOG.info("Snapshot of %s taken in %.0f ms (frozen %.0f ms)", name,
                 (taken.duration_seconds or 0) * 1000,
                 (taken.frozen_seconds or 0) * 1000, instance=instance)
        path = self.download_dir / f".upload-{image_id}"
        self.download_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.unlink(missing_ok=True)
        try:
            self.engine.export_image(image.fingerprint, path)
            update_task_state(
                task_state=task_states.IMAGE_UPLOADING,
                expected_state=task_states.IMAGE_PENDING_UPLOAD)
            glance.upload(context, image_id, path)
        finally:
            path.unlink(missing_ok=True)
            self.engine.delete_image(image.fingerprint)

    # -- inspection --------------------------------------------------------

    def get_console_output(self, context: Any, instance: Any) -> bytes:
        """Bytes: nova encodes a str as latin-1, which a systemd console
        (UTF-8 ellipses, bullets) would not survive."""
        with _instance_errors(instance):
            log = self.engine.console_log(container_name(instance))
        return log.encode("utf-8", "replace")

    def get_diagnostics(self, instance: Any) -> dict[str, Any]:
        name = container_name(instance)
        with _instance_errors(instance):
            state = self.engine.state(name)
            record = self.engine.get(name)
        return diagnostics.legacy(state, record.nics,
                                  instance.flavor.memory_mb * MiB)

    def get_instance_diagnostics(self, instance: Any) -> Any:
        name = container_name(instance)
        with _instance_errors(instance):
            state = self.engine.state(name)
            record = self.engine.get(name)
        return diagnostics.instance(
            instance, state,
            _POWER_STATES.get(state.status, power_state.NOSTATE),
            record.nics, instance.flavor.memory_mb * MiB,
            configdrive.required_by(instance))
