"""Moving instances between two daemons on this machine, as between two
hosts: each its own engine root (dir and btrfs pools), address and
certificate, each trusting the other's. pylxd's ``migrate`` (pull), the
raw push mode, and the failures that must leave the source as it was
and nothing on the target."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time

import pylxd
import pytest

from nova_lxd.client.unix import UNIX_BASE
from nova_lxd.daemon.auth.tls import make_certificate
from nova_lxd.engine.containers import criu
from nova_lxd.testing.daemon import DaemonProcess
from tests.functional.conftest import cleanup_root, make_engine_root

GiB = 1024 ** 3


class Host:
    """One 'host': a daemon, an HTTPS pylxd client trusted by it and a
    unix-socket session."""

    def __init__(self, name: str, tmp_path, **lxc_options) -> None:
        self.root = make_engine_root(f"{name}-")
        self.daemon = DaemonProcess(self.root,
                                    lxc_options=lxc_options).start()
        cert, key = make_certificate(f"{name}-admin")
        self.cert = (tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
        self.cert[0].write_bytes(cert)
        self.cert[1].write_bytes(key)
        self.daemon.trust(cert.decode(), f"{name}-admin")
        session = pylxd.client.get_session_for_url(
            self.daemon.url, verify=str(self.daemon.cert_path),
            cert=tuple(map(str, self.cert)))
        session.trust_env = False
        self.client = pylxd.Client(endpoint=self.daemon.url,
                                   cert=tuple(map(str, self.cert)),
                                   session=session)
        self.unix = self.daemon.unix_session()

    def api(self, method: str, path: str, **kwargs):
        response = self.unix.request(method, UNIX_BASE + path, timeout=120,
                                     **kwargs)
        return response.json()

    def wait(self, op: dict, timeout: float = 120) -> dict:
        return self.api("GET", f"/1.0/operations/{op['id']}/wait"
                               f"?timeout={timeout}")["metadata"]

    def names(self) -> list[str]:
        return sorted(i.name for i in self.client.instances.all())

    def run(self, name: str, script: str) -> str:
        result = self.client.instances.get(name).execute(["sh", "-c",
                                                          script])
        assert result.exit_code == 0, result
        return result.stdout

    def close(self) -> None:
        if self.daemon.proc is not None:
            self.daemon.stop()
        cleanup_root(self.root)


@pytest.fixture
def hosts(tmp_path, busybox_tarball):
    a = Host("host-a", tmp_path)
    b = Host("host-b", tmp_path, storage_driver="btrfs",
             storage_size=GiB)
    try:
        a.daemon.trust(b.daemon.certificate_pem, "host-b")
        b.daemon.trust(a.daemon.certificate_pem, "host-a")
        a.client.images.create(busybox_tarball.read_bytes(), wait=True)
        yield a, b
    finally:
        a.close()
        b.close()


def make_instance(host: Host, name: str, *, snapshot: bool = True,
                  stop: bool = True):
    fingerprint = host.client.images.all()[0].fingerprint
    inst = host.client.instances.create(
        {"name": name, "source": {"type": "image",
                                  "fingerprint": fingerprint},
         "config": {"limits.memory": "96MiB"}}, wait=True)
    inst.start(wait=True)
    host.run(name, "echo before > /data; chown 7:7 /data")
    if snapshot:
        inst.snapshots.create("snap0", wait=True)
    host.run(name, "echo after > /data")
    if stop:
        inst.stop(wait=True)
    return inst


def migration_source(host: Host, name: str, **body) -> tuple[dict, dict]:
    """POST {"migration": true} on the source: (operation, secrets)."""
    reply = host.api("POST", f"/1.0/instances/{name}",
                     json={"migration": True, **body})
    assert reply["type"] == "async", reply
    op = reply["metadata"]
    return op, op["metadata"]


def pull_body(source: Host, name: str, op: dict, secrets: dict) -> dict:
    return {"name": name, "source": {
        "type": "migration", "mode": "pull",
        "operation": f"{source.daemon.url}/1.0/operations/{op['id']}",
        "certificate": source.daemon.certificate_pem, "secrets": secrets}}


def wait_until_flowing(host: Host, op: dict, mb: float = 20) -> None:
    """Until ``op`` on ``host`` has moved ``mb`` MB of the stream."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = (host.api("GET", f"/1.0/operations/{op['id']}")
                    ["metadata"].get("metadata") or {}).get("fs_progress")
        if progress and float(progress.split()[0]) > mb:
            return
        time.sleep(0.05)
    pytest.fail("the transfer did not start")


def test_pylxd_migrate_moves_instance_with_snapshots(hosts):
    a, b = hosts
    inst = make_instance(a, "mover")
    moved = inst.migrate(b.client, wait=True)
    assert b.names() == ["mover"]
    deadline = time.monotonic() + 30        # pylxd deletes the source,
    while a.names() and time.monotonic() < deadline:   # without waiting
        time.sleep(0.1)
    assert a.names() == []
    assert moved is not None
    on_b = b.client.instances.get("mover")
    assert on_b.config.get("limits.memory") == "96MiB"
    assert [s.name for s in on_b.snapshots.all()] == ["snap0"]
    on_b.start(wait=True)
    assert b.run("mover", "cat /data; stat -c %u:%g /data") == \
        "after\n7:7\n"
    on_b.stop(wait=True)
    on_b.restore_snapshot("snap0", wait=True)
    on_b.start(wait=True)
    assert b.run("mover", "cat /data") == "before\n"


def test_push_mode_and_instance_only(hosts):
    a, b = hosts
    make_instance(a, "pushed")
    reply = b.api("POST", "/1.0/instances", json={
        "name": "pushed", "source": {"type": "migration", "mode": "push"}})
    target_op = reply["metadata"]
    source_op, _ = migration_source(a, "pushed", instance_only=True,
                                    target={
        "operation": f"{b.daemon.url}/1.0/operations/{target_op['id']}",
        "secrets": target_op["metadata"],
        "certificate": b.daemon.certificate_pem})
    assert a.wait(source_op)["status"] == "Success"
    done = b.wait(target_op)
    assert done["status"] == "Success", done
    assert b.client.instances.get("pushed").snapshots.all() == []
    assert a.names() == ["pushed"]             # the source is kept


def test_copy_of_a_running_instance_keeps_it_running(hosts):
    a, b = hosts
    make_instance(a, "runner", snapshot=False, stop=False)
    op, secrets = migration_source(a, "runner")
    target = b.api("POST", "/1.0/instances",
                   json=pull_body(a, "copy", op, secrets))["metadata"]
    assert b.wait(target)["status"] == "Success"
    assert a.wait(op)["status"] == "Success"
    assert a.client.instances.get("runner").status == "Running"
    b.client.instances.get("copy").start(wait=True)
    assert b.run("copy", "cat /data; hostname") == "after\ncopy\n"


def test_untrusted_target_and_wrong_certificate_leave_nothing(hosts,
                                                              tmp_path):
    a, b = hosts
    make_instance(a, "kept", snapshot=False)
    # host-a forgets host-b: b's dial is refused.
    fingerprint = b.daemon.fingerprint
    a.api("DELETE", f"/1.0/certificates/{fingerprint}")
    op, secrets = migration_source(a, "kept")
    target = b.api("POST", "/1.0/instances",
                   json=pull_body(a, "kept", op, secrets))["metadata"]
    failed = b.wait(target)
    assert failed["status"] == "Failure"
    assert "trust store" in failed["err"]
    a.daemon.trust(b.daemon.certificate_pem, "host-b")
    # b pins a certificate a does not present.
    op, secrets = migration_source(a, "kept")
    body = pull_body(a, "kept", op, secrets)
    body["source"]["certificate"] = make_certificate("impostor")[0].decode()
    failed = b.wait(b.api("POST", "/1.0/instances", json=body)["metadata"])
    assert failed["status"] == "Failure"
    assert "certificate" in failed["err"]
    assert b.names() == []
    assert a.names() == ["kept"]
    a.client.instances.get("kept").start(wait=True)


def test_live_move_is_refused_before_anything_moves(hosts):
    a, b = hosts
    make_instance(a, "live", snapshot=False, stop=False)
    reply = a.api("POST", "/1.0/instances/live",
                  json={"migration": True, "live": True})
    assert reply["type"] == "error"
    assert "Live migration" in reply["error"]
    # Not stateful (or, on a host without a working CRIU, CRIU's reason).
    assert "not created stateful" in reply["error"] or \
        "CRIU" in reply["error"] or "criu" in reply["error"]
    assert a.client.instances.get("live").status == "Running"
    assert b.names() == []


def stateful_sleeper(host: Host, name: str) -> str:
    """A running stateful instance with a process of its own session;
    that process's pid inside the instance."""
    fingerprint = host.client.images.all()[0].fingerprint
    inst = host.client.instances.create(
        {"name": name, "source": {"type": "image",
                                  "fingerprint": fingerprint},
         "config": {"migration.stateful": "true"}}, wait=True)
    assert inst.config["migration.stateful"] == "true"
    inst.start(wait=True)
    host.run(name, "echo kept > /data; "
                   "setsid sleep 1000 </dev/null >/dev/null 2>&1 &")
    return host.run(name, "pidof sleep").strip()


@pytest.mark.skipif(criu.problem() is not None,
                    reason=f"CRIU does not work here: {criu.problem()}")
def test_pylxd_live_migrate_keeps_the_processes(hosts):
    a, b = hosts
    pid = stateful_sleeper(a, "alive")
    inst = a.client.instances.get("alive")
    inst.migrate(b.client, live=True, wait=True)
    on_b = b.client.instances.get("alive")
    assert on_b.status == "Running"
    assert b.run("alive", "pidof sleep; cat /data") == f"{pid}\nkept\n"
    deadline = time.monotonic() + 30        # pylxd deletes the source
    while a.names() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert a.names() == []


@pytest.mark.skipif(criu.problem() is not None,
                    reason=f"CRIU does not work here: {criu.problem()}")
def test_failed_live_move_leaves_the_source_running(hosts,
                                                     busybox_tarball):
    a, b = hosts
    pid = stateful_sleeper(a, "homebody")
    # The target's first id range is taken: CRIU must restore the
    # instance's own, so the target refuses after the stream.
    b.client.images.create(busybox_tarball.read_bytes(), wait=True)
    make_instance(b, "squatter", snapshot=False)
    op, secrets = migration_source(a, "homebody", live=True)
    target = b.api("POST", "/1.0/instances",
                   json=pull_body(a, "homebody", op, secrets))["metadata"]
    failed = b.wait(target)
    assert failed["status"] == "Failure"
    assert "must keep its id range" in failed["err"]
    assert a.wait(op)["status"] == "Failure"
    assert b.names() == ["squatter"]
    assert a.client.instances.get("homebody").status == "Running"
    assert a.run("homebody", "pidof sleep; cat /data") == \
        f"{pid}\nkept\n"


@pytest.mark.parametrize("victim", ["source", "target"])
def test_daemon_killed_mid_transfer_leaves_source_intact(hosts, victim):
    a, b = hosts
    make_instance(a, "big", snapshot=False, stop=False)
    a.run("big", "dd if=/dev/urandom of=/blob bs=1M count=300 2>/dev/null;"
                 " md5sum /blob > /blob.md5")
    a.client.instances.get("big").stop(wait=True)
    op, secrets = migration_source(a, "big")
    target = b.api("POST", "/1.0/instances",
                   json=pull_body(a, "big", op, secrets))["metadata"]
    killed = a if victim == "source" else b
    wait_until_flowing(b, target)
    killed.daemon.stop(signal.SIGKILL)
    survivor = b if victim == "source" else a
    survivor_op = target if victim == "source" else op
    assert survivor.wait(survivor_op)["status"] == "Failure"
    killed.daemon.start()
    assert b.names() == []
    assert a.names() == ["big"]
    a.client.instances.get("big").start(wait=True)
    assert a.run("big", "md5sum -c /blob.md5") == "/blob: OK\n"


class CuttableProxy:
    """A TCP relay to ``port`` whose connections can be cut at once (a
    network failure between two hosts, TLS passing through untouched)."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b),
                                 daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_connection_cut_mid_transfer_leaves_source_intact(hosts):
    a, b = hosts
    make_instance(a, "cut", snapshot=False, stop=False)
    a.run("cut", "dd if=/dev/urandom of=/blob bs=1M count=300 2>/dev/null")
    a.client.instances.get("cut").stop(wait=True)
    proxy = CuttableProxy(a.daemon.port)
    op, secrets = migration_source(a, "cut")
    body = pull_body(a, "cut", op, secrets)
    body["source"]["operation"] = (f"https://127.0.0.1:{proxy.port}"
                                   f"/1.0/operations/{op['id']}")
    target = b.api("POST", "/1.0/instances", json=body)["metadata"]
    wait_until_flowing(b, target)
    proxy.cut()
    assert b.wait(target)["status"] == "Failure"
    assert a.wait(op)["status"] == "Failure"
    assert b.names() == []
    assert not list((b.root / "containers").glob("cut*"))
    a.client.instances.get("cut").start(wait=True)
    assert a.client.instances.get("cut").status == "Running"


def test_btrfs_hosts_move_with_send_streams(hosts, tmp_path,
                                            busybox_tarball):
    a, b = hosts
    c = Host("host-c", tmp_path, storage_driver="btrfs", storage_size=GiB)
    try:
        b.daemon.trust(c.daemon.certificate_pem, "host-c")
        c.daemon.trust(b.daemon.certificate_pem, "host-b")
        b.client.images.create(busybox_tarball.read_bytes(), wait=True)
        make_instance(b, "bt")
        op, secrets = migration_source(b, "bt")
        target = c.api("POST", "/1.0/instances",
                       json=pull_body(b, "bt", op, secrets))["metadata"]
        assert c.wait(target)["status"] == "Success"
        done = b.wait(op)
        assert done["metadata"]["trees"] == "btrfs"
        inst = c.client.instances.get("bt")
        assert [s.name for s in inst.snapshots.all()] == ["snap0"]
        inst.start(wait=True)
        assert c.run("bt", "cat /data") == "after\n"
        # To a dir pool the same daemon falls back to tar.
        op, secrets = migration_source(b, "bt")
        target = a.api("POST", "/1.0/instances",
                       json=pull_body(b, "bt", op, secrets))["metadata"]
        assert a.wait(target)["status"] == "Success"
        assert b.wait(op)["metadata"]["trees"] == "tar"
    finally:
        c.close()


def test_withdrawn_offer_ends_at_once(hosts):
    a, _b = hosts
    make_instance(a, "offered", snapshot=False)
    op, _secrets = migration_source(a, "offered")
    started = time.monotonic()
    a.api("DELETE", f"/1.0/operations/{op['id']}")
    done = a.wait(op, timeout=30)
    assert done["status"] == "Cancelled", done
    assert time.monotonic() - started < 10
    assert a.names() == ["offered"]
