"""A nova ``Instance`` for metadata tests, without nova's database or
neutron behind it (shared by the unit and functional tiers)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from unittest import mock

from nova import context as nova_context
from nova import objects
from nova.tests.unit import fake_instance

objects.register_all()

UUID = "6f3b1f0e-8d5a-4c1e-9a37-2f1d0c9b7e11"


def make_instance(*, hostname: str, public_key: str, user_data: bytes,
                  key_name: str = "mykey") -> objects.Instance:
    """An instance with everything ``InstanceMetadata`` would otherwise
    lazy-load from the database already set."""
    ctx = nova_context.get_admin_context()
    inst = fake_instance.fake_instance_obj(
        ctx, uuid=UUID, hostname=hostname, display_name=hostname,
        key_name=key_name, key_data=public_key, launch_index=0,
        user_data=base64.b64encode(user_data).decode(),
        expected_attrs=["metadata", "system_metadata", "info_cache",
                        "security_groups"])
    inst.keypairs = objects.KeyPairList(objects=[objects.KeyPair(
        name=key_name, type="ssh", public_key=public_key)])
    inst.ec2_ids = objects.EC2Ids(instance_id="i-00000001",
                                  ami_id="ami-00000001", kernel_id=None,
                                  ramdisk_id=None)
    inst.device_metadata = None
    inst.numa_topology = None
    return inst


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Answer the two look-ups ``InstanceMetadata`` makes outside the
    instance (block devices from the database, security groups from
    neutron) with nothing."""
    with mock.patch("nova.objects.BlockDeviceMappingList."
                    "get_by_instance_uuid",
                    return_value=objects.BlockDeviceMappingList()), \
            mock.patch("nova.network.security_group_api."
                       "get_instance_security_groups", return_value=[]):
        yield
