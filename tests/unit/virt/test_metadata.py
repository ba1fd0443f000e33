"""seed_files: nova's config-drive tree, as files for the rootfs."""

from __future__ import annotations

import fnmatch
import json

import pytest
from nova import context as nova_context
from nova.network import model as network_model
from nova.tests.unit import fake_network_cache_model

from nova_lxd.virt.metadata import SEED_DIR, seed_files
from tests.nova_instance import make_instance, offline

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm0unitTestKey tester@example"
USER_DATA = b"#!/bin/sh\nprintf '\\377' > /marker\n\xff\x00 binary tail\n"


def seed(instance=None, network_info=None, injected=(), password=None,
         **kwargs) -> dict[str, object]:
    instance = instance or make_instance(hostname="web-1", public_key=KEY,
                                         user_data=USER_DATA)
    with offline():
        files = seed_files(instance,
                           network_info or network_model.NetworkInfo([]),
                           list(injected), password, **kwargs)
    by_path = {f.path: f for f in files}
    assert len(by_path) == len(files), "duplicate paths"
    return by_path


def meta_data(files) -> dict:
    return json.loads(files[f"{SEED_DIR}/openstack/latest/meta_data.json"]
                      .data)


def test_config_drive_tree_under_the_seed_dir():
    files = seed()
    assert SEED_DIR == "/var/lib/cloud/seed/config_drive"
    for name in ("openstack/latest/meta_data.json",
                 "openstack/latest/user_data",
                 "openstack/latest/network_data.json",
                 "openstack/latest/vendor_data.json",
                 "openstack/latest/vendor_data2.json",
                 "ec2/latest/meta-data.json",
                 "ec2/latest/user-data"):
        assert f"{SEED_DIR}/{name}" in files, name
    for item in files.values():
        assert item.path.startswith(SEED_DIR + "/")
        item.validate()  # what Engine.create checks


def test_dated_meta_data_for_ds_identify():
    """ds-identify's check_configdrive_v2 globs a dated directory."""
    pattern = f"{SEED_DIR}/openstack/2???-??-??/meta_data.json"
    assert fnmatch.filter(seed(), pattern)


def test_every_file_is_roots_only():
    for item in seed(password="s3cret").values():
        assert (item.mode, item.uid, item.gid) == (0o600, 0, 0), item.path


def test_hostname_keys_and_uuid_in_meta_data():
    md = meta_data(seed())
    assert md["hostname"].split(".")[0] == "web-1"
    assert md["name"] == "web-1"
    assert md["public_keys"] == {"mykey": KEY}
    assert md["keys"] == [{"name": "mykey", "type": "ssh", "data": KEY}]
    assert md["uuid"] == "6f3b1f0e-8d5a-4c1e-9a37-2f1d0c9b7e11"
    assert "admin_pass" not in md


def test_user_data_bytes_unchanged():
    files = seed()
    assert files[f"{SEED_DIR}/openstack/latest/user_data"].data == USER_DATA
    assert files[f"{SEED_DIR}/ec2/latest/user-data"].data == USER_DATA


def test_no_user_data_no_user_data_files():
    instance = make_instance(hostname="web-1", public_key=KEY,
                             user_data=b"")
    instance.user_data = None
    files = seed(instance)
    assert not [p for p in files if "user_data" in p or "user-data" in p]


def test_admin_password_and_extra_md():
    extra = {"colour": "blue"}
    md = meta_data(seed(password="s3cret", extra_md=extra))
    assert md["admin_pass"] == "s3cret"
    assert extra == {"colour": "blue"}, "caller's dict changed"


def test_injected_files_become_content():
    files = seed(injected=[("/etc/motd", b"hello\n"),
                           ("/root/x.bin", b"\x00\x01")])
    md = meta_data(files)
    assert md["files"] == [
        {"path": "/etc/motd", "content_path": "/content/0000"},
        {"path": "/root/x.bin", "content_path": "/content/0001"}]
    assert files[f"{SEED_DIR}/openstack/content/0000"].data == b"hello\n"
    assert files[f"{SEED_DIR}/openstack/content/0001"].data == b"\x00\x01"


def test_network_info_becomes_network_data():
    vif = fake_network_cache_model.new_vif()
    files = seed(network_info=network_model.NetworkInfo([vif]))
    data = json.loads(
        files[f"{SEED_DIR}/openstack/latest/network_data.json"].data)
    assert [link["ethernet_mac_address"] for link in data["links"]] == \
        [vif["address"]]


@pytest.mark.parametrize("carried", [True, False])
def test_context_only_fills_a_missing_one(carried):
    instance = make_instance(hostname="web-1", public_key=KEY,
                             user_data=USER_DATA)
    own = instance._context
    if not carried:
        instance._context = None
    given = nova_context.get_admin_context()
    seed(instance, context=given)
    assert instance._context is (own if carried else given)
