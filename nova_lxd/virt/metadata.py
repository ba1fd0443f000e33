"""Instance metadata as a config-drive tree seeded into the rootfs.

A container has no block devices to attach a config drive to, and the
metadata service may be unreachable, so the same tree nova's libvirt
driver burns onto a ``config-2`` ISO (``nova.virt.configdrive``, fed by
``InstanceMetadata.metadata_for_config_drive``) is written as plain files
under ``/var/lib/cloud/seed/config_drive`` in the new container's rootfs.

What cloud-init does with it (checked in canonical/cloud-init and in
Debian 12's cloud-init 22.4 as installed by ``cloud_init_rootfs``):

* ``cloudinit/sources/DataSourceConfigDrive.py``: the datasource's
  ``seed_dir`` is ``<paths.seed_dir>/config_drive``, i.e.
  ``/var/lib/cloud/seed/config_drive``; ``_get_data`` reads it (then
  ``/config-drive``) before it looks for any ``config-2`` device, with
  ``openstack.read_config_drive``: ``openstack/<version>/meta_data.json``
  (required), ``user_data``, ``vendor_data*.json``, ``network_data.json``
  and the ``openstack/content/NNNN`` files named by ``files`` in
  meta_data.json, which it writes into the guest on first boot (how
  nova's injected files arrive).
* ``tools/ds-identify`` (run by the systemd generator, decides whether
  cloud-init runs at all and with which datasources):
  ``dscheck_ConfigDrive`` -> ``check_configdrive_v2`` returns FOUND when
  ``/var/lib/cloud/seed/config_drive/openstack/2???-??-??/meta_data.json``
  or ``.../openstack/latest/meta_data.json`` is a file. In a container
  ds-identify never looks at block devices or file-system labels
  (``read_fs_info_linux`` returns ``unavailable:container``), so this
  seed dir is the only way ConfigDrive is detected there, and on x86_64
  the default policy is ``notfound=disabled``: without a seed cloud-init
  does not run at all. nova's tree has both dated and ``latest``
  directories; nothing else is needed. ds-identify then writes
  ``datasource_list: [ ConfigDrive, None ]`` to /run/cloud-init/cloud.cfg.

Every file is mode 0600, owned by the container's root: ``admin_pass``
sits in ``meta_data.json`` of every version, user data in
``openstack/*/user_data`` and ``ec2/*/user-data``, and injected files
may hold anything; only root's cloud-init reads the seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nova.api.metadata import base as instance_metadata

from nova_lxd.engine.containers.files import RootfsFile

SEED_DIR = "/var/lib/cloud/seed/config_drive"
"""Where cloud-init's ConfigDrive datasource and ds-identify look."""

SEED_MODE = 0o600


def seed_files(instance: Any, network_info: Any,
               injected_files: Iterable[tuple[str, bytes]] | None,
               admin_password: str | None, context: Any = None,
               extra_md: dict[str, Any] | None = None) -> list[RootfsFile]:
    """The config-drive tree for ``instance`` as files for
    ``Engine.create(..., files=...)``.

    Arguments are those of ``ComputeDriver.spawn`` and are passed to
    ``InstanceMetadata`` as the libvirt driver's ``_create_configdrive``
    does: ``injected_files`` become ``content``, ``admin_password`` is
    ``extra_md['admin_pass']``. ``context``, when given, is what the
    instance lazy-loads fields it lacks with (ec2_ids, keypairs,
    device_metadata), for an instance that carries no context.
    """
    if context is not None and getattr(instance, "_context", None) is None:
        instance._context = context
    extra = dict(extra_md or {})
    if admin_password:
        extra["admin_pass"] = admin_password
    inst_md = instance_metadata.InstanceMetadata(
        instance, content=list(injected_files or []), extra_md=extra,
        network_info=network_info)
    return [RootfsFile(path=f"{SEED_DIR}/{path.lstrip('/')}",
                       data=_as_bytes(data), mode=SEED_MODE)
            for path, data in inst_md.metadata_for_config_drive()]


def _as_bytes(data: str | bytes) -> bytes:
    """nova yields JSON as bytes but user data and content as either."""
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)
