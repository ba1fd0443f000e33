"""``LXCDriver``: Nova's compute driver for system containers.

Thin on purpose: each method turns Nova objects into calls on the
embedded engine (``nova_lxd.engine``), and engine errors into Nova
exceptions. Host figures live in ``host``, image fetching in ``glance``,
flavor translation in ``flavor``.

Nova imports drivers as ``nova.virt.<compute_driver>``; see
``nova_lxd.virt._nova_alias`` for how this module gets there
(``[DEFAULT] compute_driver = lxd.LXCDriver``).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import Any

import nova.conf
from nova import exception
from nova.compute import power_state
from nova.virt import driver, hardware
from oslo_log import log as logging

from nova_lxd import conf as lxd_conf
from nova_lxd.engine import errors, liblxc
from nova_lxd.engine.api import Engine
from nova_lxd.virt import flavor, glance, host
from nova_lxd.virt.instances import InstanceIndex

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# Reported as hypervisor_version: nova wants an integer.
HYPERVISOR_VERSION = 1

_POWER_STATES = {
    liblxc.RUNNING: power_state.RUNNING,
    liblxc.STOPPED: power_state.SHUTDOWN,
    liblxc.FROZEN: power_state.PAUSED,
    liblxc.FREEZING: power_state.PAUSED,
    liblxc.THAWED: power_state.RUNNING,
}
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def container_name(instance: Any) -> str:
    """``instance.name`` made a valid container name (an RFC 1123 label,
    the engine's rule). The default template, ``instance-%08x``, passes
    unchanged; templates with uuids or underscores are folded."""
    name = _UNSAFE.sub("-", instance.name.lower()).strip("-")
    if not name[:1].isalpha():
        name = "i-" + name
    return name[:63].rstrip("-")


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


class LXCDriver(driver.ComputeDriver):
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
    )

    def __init__(self, virtapi: Any, read_only: bool = False) -> None:
        super().__init__(virtapi)
        lxd_conf.register_opts(CONF)
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._host: str | None = None

    @property
    def engine(self) -> Engine:
        """Built on first use, not at load: nova loads the driver before
        it finished setting up, and tests swap CONF after import. Once:
        building an engine runs its crash recovery."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = Engine(lxd_conf.engine_config(CONF))
            return self._engine

    @property
    def index(self) -> InstanceIndex:
        return InstanceIndex(self.engine.config.root / "nova-instances")

    # -- host --------------------------------------------------------------

    def init_host(self, host: str) -> None:
        self._host = host
        LOG.info("nova-lxd engine at %s", self.engine.config.root)
        glance.remove_stale_downloads(self.engine.config.root)

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

    # -- listing -----------------------------------------------------------

    def list_instances(self) -> list[str]:
        """Container names, which are the instances' names (see
        :func:`container_name`)."""
        return [record.name for record in self.engine.list()]

    def list_instance_uuids(self) -> list[str]:
        index = self.index
        uuids = (index.uuid(name) for name in self.list_instances())
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
            state = self.engine.state(name)
        return hardware.InstanceInfo(
            state=_POWER_STATES.get(state.status, power_state.NOSTATE),
            internal_id=name)

    # -- lifecycle ---------------------------------------------------------

    def spawn(self, context: Any, instance: Any, image_meta: Any,
              injected_files: Any, admin_password: Any, allocations: Any,
              network_info: Any = None, block_device_info: Any = None,
              power_on: bool = True, accel_info: Any = None) -> None:
        name = container_name(instance)
        spec = self._container_spec(instance)
        try:
            image = glance.ensure_image(self.engine, context, image_meta)
        except errors.InvalidImage as exc:
            # The user sees this fault: say why, not where on the host.
            reason = exc.kwargs.get("reason") or str(exc)
            raise exception.ImageUnacceptable(image_id=image_meta.id,
                                              reason=reason) from exc
        self.index.add(name, instance.uuid)
        try:
            create = self.engine.launch if power_on else self.engine.create
            create(name, image.fingerprint, limits=spec.limits,
                   privileged=spec.privileged)
        except errors.EngineError as exc:
            self.index.remove(name)
            raise exception.InstanceDeployFailure(
                reason=str(exc), instance_id=instance.uuid) from exc
        LOG.info("Container %s started from image %s", name,
                 image.fingerprint[:12], instance=instance)

    def _container_spec(self, instance: Any) -> flavor.ContainerSpec:
        """The flavor's limits and switches, checked before any download.
        Privileged containers only where the operator allows them
        (``[lxc] allow_privileged_flavors``); nesting and shared id maps
        are refused until the engine does them."""
        try:
            policy = flavor.Policy(
                allow_privileged=CONF.lxc.allow_privileged_flavors)
            return flavor.translate(instance.flavor, policy)
        except flavor.UnsupportedFlavor as exc:
            # InvalidInput aborts the build: another host would refuse the
            # flavor too, so no reschedule hides the reason.
            raise exception.InvalidInput(reason=str(exc)) from exc

    def destroy(self, context: Any, instance: Any, network_info: Any,
                block_device_info: Any = None, destroy_disks: bool = True,
                destroy_secrets: bool = True) -> None:
        """Kill and delete the container; a missing one is already gone
        (nova destroys after failed spawns too)."""
        name = container_name(instance)
        try:
            self.engine.delete(name, force=True)
        except errors.ContainerNotFound:
            LOG.debug("Container %s already gone", name, instance=instance)
        self.index.remove(name)

    def cleanup(self, context: Any, instance: Any, network_info: Any,
                block_device_info: Any = None, destroy_disks: bool = True,
                migrate_data: Any = None, destroy_vifs: bool = True,
                destroy_secrets: bool = True) -> None:
        """Nothing outlives ``destroy`` yet (no vifs, volumes or disks)."""

    # -- power -------------------------------------------------------------

    def power_off(self, instance: Any, timeout: int = 0,
                  retry_interval: int = 0) -> None:
        """Clean shutdown within ``timeout`` seconds, then kill; nova's
        ``timeout=0`` means a hard power off. Already off is fine."""
        name = container_name(instance)
        with _instance_errors(instance):
            if self.engine.state(name).status == liblxc.STOPPED:
                return
            self.engine.stop(name, timeout=timeout, force=timeout <= 0)

    def power_on(self, context: Any, instance: Any, network_info: Any,
                 block_device_info: Any = None, accel_info: Any = None,
                 share_info: Any = None) -> None:
        name = container_name(instance)
        with _instance_errors(instance):
            status = self.engine.state(name).status
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

    def get_console_output(self, context: Any, instance: Any) -> str:
        with _instance_errors(instance):
            return self.engine.console_log(container_name(instance))
