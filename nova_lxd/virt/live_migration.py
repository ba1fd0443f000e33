"""Live migration: a running container moved with its processes.

Only containers created stateful (flavor extra spec ``lxc:stateful=true``,
LXD's ``migration.stateful``) move live: CRIU dumps their processes on
the source, the dump travels with the rootfs from the source's daemon to
the destination's, and CRIU restores them there, running. Other
containers move cold (``openstack server migrate``).

Storage is never shared between hosts, so every live move is a block
migration as far as Nova is concerned (``block_migration`` true or
``auto``; false is refused). The steps, in Nova's order:

``check_can_live_migrate_destination`` (destination)
    refuses where CRIU fails ``criu check`` here, with CRIU's reason;
    else returns ``LXCLiveMigrateData``.
``check_can_live_migrate_source`` (source)
    refuses a container that is not stateful (its flavor needs
    ``lxc:stateful=true``), one that is not running, and a host whose
    CRIU does not work. A refusal is a ``MigrationPreCheckError``: Nova
    leaves the instance where it is, running.
``pre_live_migration`` (destination)
    plugs the ports and has its daemon wait for the container (a
    push-mode receive); where to push it (operation URL on the address
    matching ``my_ip``, its secrets, this daemon's certificate) goes to
    the source in ``migrate_data.target``.
``live_migration`` (source)
    has its daemon dump the container and push it there; the destination
    commits all or nothing. Success: Nova's ``post_method``, which
    deletes the (stopped) source container and unplugs its ports
    (``post_live_migration``, ``..._at_source``). Failure: the daemon
    has restored the source container running; Nova's
    ``recover_method`` rolls back, and the destination
    (``rollback_live_migration_at_destination``) withdraws its receive,
    removes anything left and unplugs its ports.

``LXCLiveMigrateData`` is a ``LibvirtLiveMigrateData``: Nova 34 runs its
clean-ups (``driver.cleanup`` on the source after a move, the
destination's rollback after a failure) only for libvirt's (and
Hyper-V's) migrate data. nova-conductor must import this module to read
it (``[DEFAULT] compute_driver`` does so on computes).
"""

from __future__ import annotations

from typing import Any

from nova import exception
from nova.objects import base as obj_base
from nova.objects import migrate_data
from oslo_log import log as logging
from oslo_versionedobjects import fields as ovo_fields

from nova_lxd.engine import errors, liblxc
from nova_lxd.virt import offers, vifs
from nova_lxd.virt.naming import container_name

LOG = logging.getLogger(__name__)

COLD_HINT = ("stop it or use cold migration (openstack server migrate) "
             "to move it")
STATEFUL_HINT = ("its flavor needs the extra spec lxc:stateful=true for "
                 "live migration (CRIU dumps only containers created "
                 "stateful); cold migration (openstack server migrate) "
                 "moves it")


class _Secret(ovo_fields.String):
    """A string never written out: Nova logs migrate data."""

    def stringify(self, value: str) -> str:
        return "'***'"


class SecretStringField(ovo_fields.AutoTypedField):
    AUTO_TYPE = _Secret()


@obj_base.NovaObjectRegistry.register
class LXCLiveMigrateData(migrate_data.LibvirtLiveMigrateData):
    """What the hosts tell each other about a live move (Nova carries it
    between the pre-checks and the move itself). A libvirt subclass so
    that Nova cleans up after a non-shared block migration (see the
    module's doc); ``is_shared_*`` are always false."""

    # 2.0: a LibvirtLiveMigrateData (was LiveMigrateData), ``target``
    # (``criu_problem`` dropped: 1.0 never left a host).
    VERSION = "2.0"
    fields = {
        # Where the source's daemon pushes the container (JSON:
        # operation, secrets, certificate); hidden in logs.
        "target": SecretStringField(nullable=True),
    }


class LiveMigrationMixin:
    """For ``LXCDriver``: needs ``engine``, ``daemon``, ``_host`` and
    ``get_host_ip_addr``."""

    # -- checks ------------------------------------------------------------

    def _criu_refusal(self) -> exception.MigrationPreCheckError | None:
        problem = self.engine.stateful_snapshot_problem()
        if not problem:
            return None
        return exception.MigrationPreCheckError(reason=(
            f"live migration of containers needs CRIU, which does not "
            f"work on {self._host}: {problem}; {COLD_HINT}"))

    def check_can_live_migrate_destination(
            self, context: Any, instance: Any, src_compute_info: Any,
            dst_compute_info: Any, block_migration: bool | None = False,
            disk_over_commit: bool | None = False) -> LXCLiveMigrateData:
        refusal = self._criu_refusal()
        if refusal:
            raise refusal
        if block_migration is False:
            raise exception.MigrationPreCheckError(reason=(
                "containers' hosts share no storage: live migration "
                "copies the container (block_migration true or auto)"))
        data = LXCLiveMigrateData()
        data.block_migration = True
        data.is_shared_block_storage = False
        data.is_shared_instance_path = False
        if disk_over_commit is not None:
            data.disk_over_commit = bool(disk_over_commit)
        data.target = None
        return data

    def cleanup_live_migration_destination_check(
            self, context: Any, dest_check_data: Any) -> None:
        """The destination check leaves nothing behind."""

    def check_can_live_migrate_source(self, context: Any, instance: Any,
                                      dest_check_data: Any,
                                      block_device_info: Any = None) -> Any:
        name = container_name(instance)
        try:
            record = self.engine.get(name)
            status = self.engine.status(name)
        except errors.ContainerNotFound:
            raise exception.MigrationPreCheckError(reason=(
                f"container {name} is not on {self._host}")) from None
        if not getattr(record, "stateful", False):
            raise exception.MigrationPreCheckError(reason=(
                f"container {name} was not created stateful: "
                f"{STATEFUL_HINT}"))
        if status != liblxc.RUNNING:
            raise exception.MigrationPreCheckError(reason=(
                f"container {name} is {status.lower()}, not running: "
                f"only running containers move live; {COLD_HINT}"))
        refusal = self._criu_refusal()
        if refusal:
            raise refusal
        return dest_check_data

    def get_instance_disk_info(self, instance: Any,
                               block_device_info: Any = None) -> str:
        """Nova asks before a block migration: the container's files
        travel in the daemons' stream, not as disks."""
        return "[]"

    # -- the move ------------------------------------------------------

    def pre_live_migration(self, context: Any, instance: Any,
                           block_device_info: Any, network_info: Any,
                           disk_info: Any, migrate_data: Any) -> Any:
        """Destination: ports plugged, the daemon waiting for the
        container; where to push it goes back to the source."""
        name = container_name(instance)
        vifs.plug(instance, network_info)
        try:
            migrate_data.target = offers.receive(
                self.daemon, name, self.get_host_ip_addr())
        except offers.MoveError as exc:
            vifs.unplug(instance, network_info)
            raise exception.MigrationError(reason=str(exc)) from exc
        LOG.info("Waiting for container %s to be pushed here live", name,
                 instance=instance)
        return migrate_data

    def live_migration(self, context: Any, instance: Any, dest: str,
                       post_method: Any, recover_method: Any,
                       block_migration: bool = False,
                       migrate_data: Any = None) -> None:
        """Source: the daemon dumps the container and pushes it to the
        destination's; then Nova's post (success) or recover (failure:
        the source container runs again, nothing is left there)."""
        name = container_name(instance)
        try:
            target = (migrate_data.target
                      if migrate_data is not None
                      and migrate_data.obj_attr_is_set("target") else None)
            if not target:
                raise offers.MoveError(f"{dest} said nowhere to push to")
            offers.push_live(self.daemon, name, target)
        except Exception as exc:  # any failure: Nova must roll back
            LOG.error("Live migration of container %s to %s failed: %s",
                      name, dest, exc, instance=instance)
            self._log_source_state(name, instance)
            recover_method(context, instance, dest, migrate_data)
            return
        LOG.info("Container %s moved live to %s", name, dest,
                 instance=instance)
        post_method(context, instance, dest, block_migration, migrate_data)

    def _log_source_state(self, name: str, instance: Any) -> None:
        try:
            status = self.engine.status(name)
        except errors.EngineError as exc:
            LOG.error("Container %s: state unknown after the failed move: "
                      "%s", name, exc, instance=instance)
            return
        if status != liblxc.RUNNING:
            LOG.error("Container %s is %s after the failed move (its "
                      "daemon should have restored it running)", name,
                      status, instance=instance)

    def live_migration_abort(self, instance: Any) -> None:
        raise NotImplementedError(
            "a live migration of a container cannot be aborted: it ends "
            "once the dump is restored on the destination, or fails and "
            "the container runs on where it was")

    # -- after -------------------------------------------------------------

    def post_live_migration(self, context: Any, instance: Any,
                            block_device_info: Any,
                            migrate_data: Any = None) -> None:
        """Source: the container, stopped since the dump, goes."""
        name = container_name(instance)
        try:
            self.engine.delete(name, force=True)
        except errors.ContainerNotFound:
            LOG.debug("Container %s already gone", name, instance=instance)
        LOG.info("Container %s removed from the source host after the "
                 "live move", name, instance=instance)

    def post_live_migration_at_source(self, context: Any, instance: Any,
                                      network_info: Any) -> None:
        vifs.unplug(instance, network_info)

    def post_live_migration_at_destination(
            self, context: Any, instance: Any, network_info: Any,
            block_migration: bool = False,
            block_device_info: Any = None) -> None:
        """Destination: the container already runs here."""
        LOG.info("Container %s runs here after its live move",
                 container_name(instance), instance=instance)

    def rollback_live_migration_at_destination(
            self, context: Any, instance: Any, network_info: Any,
            block_device_info: Any, destroy_disks: bool = True,
            migrate_data: Any = None) -> None:
        """Destination, after a failure: the receive withdrawn if still
        waiting, a container left here removed (the engine commits all or
        nothing: there should be none), the ports unplugged. Storage is
        never shared, so this host's copy goes whatever
        ``destroy_disks`` says."""
        name = container_name(instance)
        if (migrate_data is not None and migrate_data.obj_attr_is_set(
                "target") and migrate_data.target):
            offers.withdraw(self.daemon, migrate_data.target)
        if self._remove_leftover(name, instance, network_info,
                                 "the failed live move"):
            LOG.warning("Container %s was left here by the failed live "
                        "move: removed", name, instance=instance)
