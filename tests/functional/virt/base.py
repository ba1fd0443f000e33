"""A nova-in-one-process test case whose compute runs nova-lxd.

API, conductor, scheduler, placement and one compute service run in the
test process with nova's own fixtures (``nova.tests`` ships in the nova
wheel, which is why nova is pinned). The compute service loads
``LXCDriver`` the way nova-compute does, through ``nova.virt.lxd``, and
its engine root is a fresh directory under /var/tmp (not pytest's 0700
tmp dirs: unprivileged containers must be able to walk down to their
root file systems).
"""

from __future__ import annotations

import builtins
import functools
import glob
import io
import os
import sys
import sysconfig
import tarfile
import tempfile
import types
from pathlib import Path

import fixtures
import nova.conf
from nova.tests.functional import integrated_helpers
from oslo_privsep import daemon as oslo_daemon

from nova_lxd import conf as lxd_conf
from nova_lxd.engine.api import Engine
from nova_lxd.privsep import engine_context
from nova_lxd.testing.busybox import build_busybox_tarball
from nova_lxd.virt import _nova_alias
from nova_lxd.virt.driver import container_name
from tests.functional.conftest import (
    cleanup_root,
    make_config,
    make_engine_root,
)

CONF = nova.conf.CONF
API_PASTE = Path(sysconfig.get_paths()["data"]) / "etc/nova/api-paste.ini"

_REAL_CLIENT_CHANNEL = oslo_daemon.RootwrapClientChannel
# The real functions, taken before any nova TestCase replaces them.
_REAL = {
    "os.uname": os.uname,
    "os.listdir": os.listdir,
    "os.path.isdir": os.path.isdir,
    "builtins.open": builtins.open,
    "glob.glob": glob.glob,
    "glob.iglob": glob.iglob,
}


def busybox_bytes(extra_files: dict[str, bytes] | None = None) -> bytes:
    """The busybox rootfs as a tar.gz, with ``extra_files`` (path: data)
    appended to tell images apart."""
    with tempfile.TemporaryDirectory() as tmp:
        tarball = build_busybox_tarball(Path(tmp) / "busybox.tar")
        if extra_files:
            with tarfile.open(tarball, "a") as tar:
                for path, data in extra_files.items():
                    info = tarfile.TarInfo("./" + path.lstrip("/"))
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return tarball.read_bytes()


class RealHostFixture(fixtures.Fixture):
    """Undo nova's poisoning of ``os.uname`` and of reads under /sys.

    nova's TestCase makes host inspection fail so that its fake drivers
    never depend on the test machine. These tests run real containers:
    the engine must read the real cgroup, loop device and cpu files.
    """

    def _setUp(self) -> None:
        for name, real in _REAL.items():
            self.useFixture(fixtures.MonkeyPatch(name, real))


class PrivsepDaemonFixture(fixtures.Fixture):
    """The engine's privsep context started for real: a privsep-helper
    process reading its own configuration file, as nova-compute starts
    it (through sudo or rootwrap) in a deployment."""

    def __init__(self, engine_root: Path) -> None:
        self.engine_root = engine_root

    def _setUp(self) -> None:
        conf_file = self.engine_root / "privsep.conf"
        conf_file.write_text(f"[lxc]\nroot = {self.engine_root}\n"
                             "stop_timeout = 10\nlock_timeout = 30\n")
        helper = Path(sys.executable).with_name("privsep-helper")
        # nova's TestCase forbids starting helpers; this one is wanted.
        self.useFixture(fixtures.MonkeyPatch(
            "oslo_privsep.daemon.RootwrapClientChannel",
            _REAL_CLIENT_CHANNEL))
        CONF.set_override("helper_command",
                          f"{helper} --config-file {conf_file}",
                          group="nova_lxd_privileged")
        self.addCleanup(CONF.clear_override, "helper_command",
                        group="nova_lxd_privileged")
        self.useFixture(fixtures.MockPatchObject(
            engine_context, "client_mode", True))
        self.addCleanup(engine_context.stop)


class LXCIntegratedTestBase(integrated_helpers._IntegratedTestBase):
    """``_IntegratedTestBase`` with nova-lxd as the compute driver."""

    # Networks are required from 2.37 on; 'none' keeps neutron out.
    microversion = "2.37"
    ADMIN_API = True
    PRIVSEP_DAEMON = False
    """True: the engine runs in a real privsep daemon, as deployed."""
    STORAGE = "dir"
    """The engine's storage pool driver (``dir`` or ``btrfs``)."""

    def setUp(self) -> None:
        if os.geteuid() != 0:
            self.skipTest("boots real containers: needs root")
        self.engine_root = make_engine_root(prefix="nova-")
        self.addCleanup(cleanup_root, self.engine_root)
        _nova_alias.register()
        self.addCleanup(_nova_alias.unregister)
        lxd_conf.register_opts(CONF)
        super().setUp()

    def _setup_compute_service(self):
        self._configure_compute()
        return super()._setup_compute_service()

    def _configure_compute(self) -> None:
        """Configuration every compute of the test shares; runs after
        nova's TestCase.setUp: its ConfFixture resets compute_driver to a
        fake one, and it poisons host reads."""
        self.useFixture(RealHostFixture())
        if self.PRIVSEP_DAEMON:
            self.useFixture(PrivsepDaemonFixture(self.engine_root))
        else:
            # The engine's privsep entrypoints run in this (root) process.
            self.useFixture(fixtures.MockPatchObject(
                engine_context, "client_mode", False))
        self.flags(compute_driver=_nova_alias.COMPUTE_DRIVER,
                   vif_plugging_timeout=0)
        self.flags(api_paste_config=str(API_PASTE), group="wsgi")
        self.flags(root=str(self.engine_root), stop_timeout=10.0,
                   lock_timeout=30.0, storage_driver=self.STORAGE,
                   storage_size=2 * 1024 ** 3, group="lxc")

    def _setup_services(self):
        super()._setup_services()
        self._keep_uploaded_data()

    def _keep_uploaded_data(self) -> None:
        """nova's Glance fixture drops the data given to ``update``
        (which is how a snapshot reaches Glance); keep it, as Glance
        does, so that the snapshot can be booted again."""
        fixture = self.glance
        original = fixture.update

        def update(context, image_id, metadata, data=None,
                   purge_props=False):
            image = original(context, image_id, metadata, data=None,
                             purge_props=purge_props)
            if data is not None:
                fixture._imagedata[image_id] = data.read()
                image["size"] = len(fixture._imagedata[image_id])
                image["status"] = "active"
            return image

        # As the fixture stubs nova's Glance API: with a callable that
        # is not a descriptor, so that it is not bound to the API object.
        self.stub_out("nova.image.glance.API.update",
                      functools.partial(update))

    def _clear_attrs(self) -> None:
        """nova's version deletes every public attribute after a test,
        including the test method pytest (>= 8) still wants to read."""

    def upload_image(self, data: bytes, name: str = "busybox",
                     disk_format: str = "raw",
                     container_format: str = "bare") -> str:
        """An image in the Glance fixture; rootfs tarballs go as raw/bare
        (Glance has no rootfs format)."""
        meta = {"name": name, "disk_format": disk_format,
                "container_format": container_format, "status": "active",
                "visibility": "public", "min_ram": 0, "min_disk": 0,
                "properties": {}}
        return self.glance.create(None, meta, data=io.BytesIO(data))["id"]

    def upload_busybox(self, extra_files: dict[str, bytes] | None = None
                       ) -> str:
        return self.upload_image(busybox_bytes(extra_files))

    @staticmethod
    def container_of(server: dict) -> str:
        return container_name(types.SimpleNamespace(
            name=server["OS-EXT-SRV-ATTR:instance_name"]))

    def observer_engine(self) -> Engine:
        """A second engine on the same root, as another process would
        see it: what the driver did must be on disk, not in memory."""
        return Engine(make_config(self.engine_root,
                                  storage_driver=self.STORAGE,
                                  storage_size=2 * 1024 ** 3),
                      recover=False)
