"""Resize on the same host: the container is changed in place.

Nova's resize calls (``migrate_disk_and_power_off``, ``finish_migration``,
``confirm_migration``, ``finish_revert_migration``) meet one container
when source and destination are this host: the new flavor's limits are
applied to it while it runs (the engine writes them into its cgroups),
the root disk quota grows, and a revert applies the old flavor again.
A smaller root disk is refused before anything changes. Moving a
container to another host is not implemented yet and is refused with a
message, with the instance left as it was.
"""

from __future__ import annotations

from typing import Any

from nova import exception
from oslo_log import log as logging

from nova_lxd.engine import errors
from nova_lxd.virt.naming import container_name

LOG = logging.getLogger(__name__)


class SameHostMovesMixin:
    """For ``LXCDriver``: needs ``engine``, ``_host``, ``_container_spec``,
    ``power_on``, ``power_off`` and ``get_host_ip_addr``."""

    def migrate_disk_and_power_off(self, context: Any, instance: Any,
                                   dest: str, flavor: Any, network_info: Any,
                                   block_device_info: Any = None,
                                   timeout: int = 0,
                                   retry_interval: int = 0) -> str:
        """Checks only: on this host the container keeps running and is
        resized in ``finish_migration``."""
        if dest not in (self._host, self.get_host_ip_addr()):
            raise exception.InstanceFaultRollback(exception.ResizeError(
                reason=f"moving containers to another host ({dest}) is not "
                       f"supported yet; resize on the same host "
                       f"([DEFAULT] allow_resize_to_same_host)"))
        if flavor.root_gb < instance.flavor.root_gb:
            raise exception.InstanceFaultRollback(exception.ResizeError(
                reason=f"the root disk cannot shrink from "
                       f"{instance.flavor.root_gb} GB to {flavor.root_gb} GB"
            ))
        return ""

    def finish_migration(self, context: Any, migration: Any, instance: Any,
                         disk_info: Any, network_info: Any, image_meta: Any,
                         resize_instance: bool, allocations: Any,
                         block_device_info: Any = None, power_on: bool = True,
                         share_info: Any = None) -> None:
        """The new flavor (``instance.flavor`` now) on the container."""
        self._apply_flavor(instance, power_on, network_info)

    def confirm_migration(self, context: Any, migration: Any, instance: Any,
                          network_info: Any) -> None:
        """Nothing to clean: the container was changed in place."""

    def finish_revert_migration(self, context: Any, instance: Any,
                                network_info: Any, migration: Any,
                                block_device_info: Any = None,
                                power_on: bool = True,
                                share_info: Any = None) -> None:
        """The old flavor (``instance.flavor`` again) on the container;
        ``destroy`` kept it, storage being shared with this very host."""
        self._apply_flavor(instance, power_on, network_info)

    def _apply_flavor(self, instance: Any, power_on: bool,
                      network_info: Any) -> None:
        name = container_name(instance)
        spec = self._container_spec(instance)
        try:
            self.engine.update(name, limits=spec.limits,
                               root_disk=spec.root_disk_bytes)
        except errors.ContainerNotFound:
            raise exception.InstanceNotFound(
                instance_id=instance.uuid) from None
        except errors.EngineError as exc:
            raise exception.ResizeError(reason=str(exc)) from exc
        if power_on:
            self.power_on(None, instance, network_info)
        else:
            self.power_off(instance)
        LOG.info("Container %s now has flavor %s", name,
                 instance.flavor.name, instance=instance)

    # -- shared storage checks ------------------------------------------

    def check_instance_shared_storage_local(self, context: Any,
                                            instance: Any) -> dict[str, str]:
        """A marker file in the engine's root; the other host looks for
        it (``..._remote``). On the same host it is found: storage shared,
        which is what keeps ``destroy`` from deleting the container when a
        same-host resize is reverted."""
        return {"marker": self.engine.storage_marker_create()}

    def check_instance_shared_storage_remote(self, context: Any,
                                             data: dict[str, str]) -> bool:
        return self.engine.storage_marker_exists(data["marker"])

    def check_instance_shared_storage_cleanup(self, context: Any,
                                              data: dict[str, str]) -> None:
        self.engine.storage_marker_remove(data["marker"])
