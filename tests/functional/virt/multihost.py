"""Nova with two compute hosts running nova-lxd, on one machine.

Groundwork for moving instances between hosts: ``TwoHostTestBase``
starts the computes ``host1`` and ``host2`` in the test process (nova's
own fixtures, as ``LXCIntegratedTestBase``), and gives each what a
separate machine would have:

- its own engine root (containers, images, storage pool) and its own
  subordinate id ranges (the machine's ``/etc/subuid`` halved), so the
  two never allocate the same host ids;
- its own address (``127.0.0.1``, ``127.0.0.2``): the driver's
  ``get_host_ip_addr``, which nova hands to ``migrate_disk_and_power_off``
  as the destination;
- its own compute node uuid and image download directory;
- its own ``nlxd`` on that root, serving HTTPS on its address, which
  trusts the other host's daemon certificate (added through the daemon's
  API, as an operator would).

The driver reads those through ``driver._host`` (set by ``init_host``)
from ``self.hosts``; nothing in the driver changes. One process has one
CONF and one in-process privsep context, so each driver talks to an
``Engine`` of its own directly (same methods as ``PrivilegedEngine``).

Usage::

    class MyTest(TwoHostTestBase):
        def test_it(self):
            server = self._create_server(
                image_uuid=self.upload_busybox(), host="host1")
            host1 = self.hosts["host1"]
            host1.engine.get(self.container_of(server))
            host1.daemon.https_session().get(host1.daemon.url + "/1.0")
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import fixtures

from nova_lxd import conf as lxd_conf
from nova_lxd.engine import idmap
from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.testing.daemon import DaemonProcess
from nova_lxd.virt.driver import LXCDriver
from tests.functional.conftest import cleanup_root, make_engine_root
from tests.functional.virt import base

CONF = base.CONF
HOSTS = {"host1": "127.0.0.1", "host2": "127.0.0.2"}
"""Compute host names and the loopback address each one uses."""


@dataclasses.dataclass
class Host:
    """One compute host of the test, as a separate machine would be."""

    name: str
    ip: str
    config: EngineConfig
    engine: Engine
    """The engine the host's driver uses (its ``engine``)."""
    daemon: DaemonProcess
    download_dir: Path
    node_uuid: str
    compute: Any = None
    """nova's compute service, once started."""

    @property
    def root(self) -> Path:
        return self.config.root

    def observer(self) -> Engine:
        """A fresh engine on this host's root, as another process would
        see it (what the driver did must be on disk)."""
        return Engine(self.config, recover=False)


def split_subordinate_ids(source: Path, user: str, parts: int
                          ) -> list[str]:
    """``user``'s first range in a subuid/subgid file cut into ``parts``
    disjoint ranges, one file text per part."""
    ranges = idmap.read_subordinate_ranges(source, user)
    if not ranges:
        raise RuntimeError(f"{source} has no ids for {user}")
    size = ranges[0].count // parts
    return [f"{user}:{ranges[0].start + i * size}:{size}\n"
            for i in range(parts)]


class PerHostDriverFixture(fixtures.Fixture):
    """``LXCDriver`` members that differ from one machine to the next,
    taken from the driver's host (``_host``, known from ``init_host``
    on, before the first engine call)."""

    def __init__(self, hosts: dict[str, Host]) -> None:
        self.hosts = hosts

    def _host_of(self, driver: LXCDriver) -> Host:
        try:
            return self.hosts[driver._host]
        except KeyError:
            raise RuntimeError(f"no test host {driver._host!r}: the driver "
                               f"is used before init_host") from None

    def _setUp(self) -> None:
        of = self._host_of
        original = LXCDriver.get_available_resource

        def get_available_resource(driver: LXCDriver,
                                   nodename: str) -> dict[str, Any]:
            # The node uuid nova would otherwise read from state_path,
            # which both computes share in one process.
            return {**original(driver, nodename),
                    "uuid": of(driver).node_uuid}

        def get_nodenames_by_uuid(driver: LXCDriver,
                                  refresh: bool = False) -> dict[str, str]:
            return {of(driver).node_uuid: of(driver).name}

        members = {
            "engine": property(lambda driver: of(driver).engine),
            "download_dir": property(lambda driver: of(driver).download_dir),
            "get_host_ip_addr": lambda driver: of(driver).ip,
            "get_available_resource": get_available_resource,
            "get_nodenames_by_uuid": get_nodenames_by_uuid,
        }
        for name, value in members.items():
            self.useFixture(fixtures.MonkeyPatch(
                f"nova_lxd.virt.driver.LXCDriver.{name}", value))


class TwoHostTestBase(base.LXCIntegratedTestBase):
    """Computes ``host1`` and ``host2`` on nova-lxd, each with its own
    engine root and daemon (``self.hosts``); ``self.compute`` is host1's
    service. Boot onto a host with ``_create_server(host=...)``."""

    # 2.74: servers can be booted onto a given host.
    microversion = "2.74"
    PRIVSEP_DAEMON = False
    """One privsep daemon reads one configuration: not per host."""
    CAST_AS_CALL = False
    """Casts stay casts, as between real hosts: with calls, an error the
    source host raises in a resize reaches the destination's
    ``prep_resize``, which errors the instance out."""

    def _setup_compute_service(self):
        self._configure_compute()
        self.hosts: dict[str, Host] = {}
        subuids = self._host_id_ranges(Path("/etc/subuid"))
        subgids = self._host_id_ranges(Path("/etc/subgid"))
        for (name, ip), subuid, subgid in zip(HOSTS.items(), subuids,
                                              subgids, strict=True):
            self.hosts[name] = self._make_host(name, ip, subuid, subgid)
        self._introduce_daemons()
        self.useFixture(PerHostDriverFixture(self.hosts))
        for host in self.hosts.values():
            host.compute = self._start_compute(host.name)
        return self.hosts["host1"].compute

    def _host_id_ranges(self, source: Path) -> list[str]:
        """Each host's subuid (or subgid) file text, from the machine's
        ``source``: disjoint halves, so the hosts never allocate the same
        host ids."""
        return split_subordinate_ids(source, "root", len(HOSTS))

    def _make_host(self, name: str, ip: str, subuid: str,
                   subgid: str) -> Host:
        root = make_engine_root(prefix=f"nova-{name}-")
        self.addCleanup(cleanup_root, root)
        (root / "subuid").write_text(subuid)
        (root / "subgid").write_text(subgid)
        config = dataclasses.replace(
            lxd_conf.engine_config(CONF), root=root,
            subuid_file=root / "subuid", subgid_file=root / "subgid")
        # The daemon builds the same engine from its own configuration.
        daemon = DaemonProcess(root, address=ip, lxc_options={
            "stop_timeout": config.stop_timeout,
            "lock_timeout": config.lock_timeout,
            "storage_driver": config.storage_driver,
            "storage_size": config.storage_size,
            "subuid_file": config.subuid_file,
            "subgid_file": config.subgid_file,
        }).start()
        self.addCleanup(self._stop_daemon, daemon)
        downloads = Path(self.useFixture(fixtures.TempDir()).path)
        return Host(name=name, ip=ip, config=config, engine=Engine(config),
                    daemon=daemon, download_dir=downloads,
                    node_uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)))

    @staticmethod
    def _stop_daemon(daemon: DaemonProcess) -> None:
        if daemon.proc is not None:
            daemon.stop()

    def _introduce_daemons(self) -> None:
        """Each daemon trusts every other daemon's server certificate,
        which is what a daemon presents as a client to another."""
        for host in self.hosts.values():
            for other in self.hosts.values():
                if other is not host:
                    host.daemon.trust(other.daemon.certificate_pem,
                                      other.name)

    def _live_migrate_forced(self, server: dict, host: str) -> None:
        """``os-migrateLive`` to ``host``, forced (API 2.30): the
        destination's pre-checks answer the request itself (a refusal is
        the API's 400)."""
        self.api.microversion = "2.30"
        self.api.post_server_action(server["id"], {"os-migrateLive": {
            "host": host, "block_migration": "auto", "force": True}})

    def observer_engine(self) -> Engine:
        """Not one root here: use ``self.hosts[name].observer()``."""
        raise NotImplementedError("use self.hosts[name].observer()")
