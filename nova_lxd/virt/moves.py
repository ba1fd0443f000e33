"""Resize and cold migration: on this host, or to another one.

Nova's resize calls (``migrate_disk_and_power_off``,
``finish_migration``, ``confirm_migration``, ``finish_revert_migration``)
meet one container when source and destination are this host: the new
flavor's limits are applied to it while it runs (the engine writes them
into its cgroups), the root disk quota grows, and a revert applies the
old flavor again.

To another host, the container moves through the hosts' daemons
(``nova_lxd.virt.offers``): the source stops it and offers it, the
destination fetches it, applies the new flavor and starts it. The
source keeps its stopped container until Nova confirms (then deletes
it) or reverts (then the destination's copy is destroyed and the
source's started again with the old flavor, untouched). A smaller root
disk is refused before anything changes, on either path.
"""

from __future__ import annotations

from typing import Any

from nova import exception
from oslo_log import log as logging

from nova_lxd.engine import errors
from nova_lxd.virt import offers, vifs
from nova_lxd.virt.naming import container_name

LOG = logging.getLogger(__name__)


class MovesMixin:
    """For ``LXCDriver``: needs ``engine``, ``daemon``, ``_host``,
    ``_container_spec``, ``power_on``, ``power_off`` and
    ``get_host_ip_addr``."""

    def migrate_disk_and_power_off(self, context: Any, instance: Any,
                                   dest: str, flavor: Any, network_info: Any,
                                   block_device_info: Any = None,
                                   timeout: int = 0,
                                   retry_interval: int = 0) -> str:
        """Same host: checks only (the container keeps running and is
        resized in ``finish_migration``). Another host: the container is
        offered on this host's daemon, then stopped; the offer is what
        the destination fetches."""
        if flavor.root_gb < instance.flavor.root_gb:
            raise exception.InstanceFaultRollback(exception.ResizeError(
                reason=f"the root disk cannot shrink from "
                       f"{instance.flavor.root_gb} GB to {flavor.root_gb} GB"
            ))
        if dest in (self._host, self.get_host_ip_addr()):
            return ""
        name = container_name(instance)
        try:
            offer = offers.offer(self.daemon, name,
                                    self.get_host_ip_addr())
        except offers.MoveError as exc:
            raise exception.InstanceFaultRollback(exception.ResizeError(
                reason=f"cannot move the container to {dest}: {exc}")
            ) from exc
        try:
            self.power_off(instance, timeout, retry_interval)
        except Exception:
            offers.withdraw(self.daemon, offer)
            raise
        LOG.info("Container %s stopped and offered to %s", name, dest,
                 instance=instance)
        return offer

    def finish_migration(self, context: Any, migration: Any, instance: Any,
                         disk_info: Any, network_info: Any, image_meta: Any,
                         resize_instance: bool, allocations: Any,
                         block_device_info: Any = None, power_on: bool = True,
                         share_info: Any = None) -> None:
        """The new flavor (``instance.flavor`` now) on the container,
        fetched first from the source host when it comes from there."""
        if offers.is_offer(disk_info):
            self._fetch(instance, disk_info, network_info)
        self._apply_flavor(instance, power_on, network_info)

    def _fetch(self, instance: Any, offer: str, network_info: Any) -> None:
        name = container_name(instance)
        vifs.plug(instance, network_info)
        try:
            offers.fetch(self.daemon, name, offer)
        except offers.MoveError as exc:
            vifs.unplug(instance, network_info)
            raise exception.ResizeError(reason=str(exc)) from exc
        LOG.info("Container %s fetched from the source host", name,
                 instance=instance)

    def confirm_migration(self, context: Any, migration: Any, instance: Any,
                          network_info: Any) -> None:
        """On the source host: the stopped original, kept for a revert,
        goes (nothing to do after a resize on one host)."""
        if migration.source_compute == migration.dest_compute:
            return
        name = container_name(instance)
        try:
            self.engine.delete(name, force=True)
        except errors.ContainerNotFound:
            LOG.debug("Container %s already gone", name, instance=instance)
        vifs.unplug(instance, network_info)
        LOG.info("Container %s removed from the source host after the "
                 "move was confirmed", name, instance=instance)

    def finish_revert_migration(self, context: Any, instance: Any,
                                network_info: Any, migration: Any,
                                block_device_info: Any = None,
                                power_on: bool = True,
                                share_info: Any = None) -> None:
        """The old flavor (``instance.flavor`` again) on the container
        this host kept: the original, stopped since the move (the
        destination destroyed its copy), or, on one host, the one
        container that ``destroy`` kept (storage shared with itself)."""
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
        same-host resize is reverted. Two hosts never share an engine
        root, so a move between them always copies (and evacuation
        rebuilds from the image)."""
        return {"marker": self.engine.storage_marker_create()}

    def check_instance_shared_storage_remote(self, context: Any,
                                             data: dict[str, str]) -> bool:
        return self.engine.storage_marker_exists(data["marker"])

    def check_instance_shared_storage_cleanup(self, context: Any,
                                              data: dict[str, str]) -> None:
        self.engine.storage_marker_remove(data["marker"])
