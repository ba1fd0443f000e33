"""Live migration: checked before anything moves.

A container moves live only with CRIU (its processes dumped, their pages
copied while they run, a last dump and a restore on the destination).
Where CRIU fails ``criu check`` (Debian 12's 3.17 on recent kernels) the
destination's pre-check refuses with CRIU's own reason, as a
``MigrationPreCheckError``: Nova then leaves the instance where it is,
running. The iterative pre-copy itself is not written yet, so a host
whose CRIU works refuses too, saying so; cold migration
(``openstack server migrate``) moves containers between hosts.
"""

from __future__ import annotations

from typing import Any

from nova import exception
from nova.objects import base as obj_base
from nova.objects import fields, migrate_data

COLD_HINT = ("stop it or use cold migration (openstack server migrate) "
             "to move it")


@obj_base.NovaObjectRegistry.register
class LXCLiveMigrateData(migrate_data.LiveMigrateData):
    """What the hosts tell each other about a live move (Nova carries it
    between the pre-checks and the move itself)."""

    VERSION = "1.0"
    fields = {
        # Why CRIU cannot dump or restore on the host that checked.
        "criu_problem": fields.StringField(nullable=True),
    }


class LiveMigrationMixin:
    """For ``LXCDriver``: needs ``engine`` and ``_host``."""

    def check_can_live_migrate_destination(
            self, context: Any, instance: Any, src_compute_info: Any,
            dst_compute_info: Any, block_migration: bool = False,
            disk_over_commit: bool = False) -> LXCLiveMigrateData:
        problem = self.engine.stateful_snapshot_problem()
        if problem:
            raise exception.MigrationPreCheckError(reason=(
                f"live migration of containers needs CRIU, which does not "
                f"work on {self._host}: {problem}; {COLD_HINT}"))
        raise exception.MigrationPreCheckError(reason=(
            f"live migration of containers (CRIU pre-copy) is not "
            f"implemented by nova-lxd yet; {COLD_HINT}"))

    def cleanup_live_migration_destination_check(
            self, context: Any, dest_check_data: Any) -> None:
        """The destination check leaves nothing behind."""

    def check_can_live_migrate_source(self, context: Any, instance: Any,
                                      dest_check_data: Any,
                                      block_device_info: Any = None) -> Any:
        problem = self.engine.stateful_snapshot_problem()
        if problem:
            raise exception.MigrationPreCheckError(reason=(
                f"live migration of containers needs CRIU, which does not "
                f"work on {self._host}: {problem}; {COLD_HINT}"))
        return dest_check_data
