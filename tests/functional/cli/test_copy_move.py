"""``nlxc copy`` and ``nlxc move`` between two real daemons: ``local``
is daemon A's unix socket, ``a`` and ``b`` its and daemon B's HTTPS
addresses (added with trust tokens), and A and B trust each other's
server certificates. Daemon C trusts no other daemon."""

from __future__ import annotations

import json

import pytest

from nova_lxd.engine.containers import criu
from nova_lxd.testing.daemon import DaemonProcess
from tests.functional.cli.conftest import Nlxc
from tests.functional.conftest import cleanup_root, make_engine_root


@pytest.fixture(scope="module")
def other_daemons(daemon):
    """B (trusting A, trusted by A) and C (a stranger to both)."""
    started = []
    try:
        for name in ("b", "c"):
            started.append(DaemonProcess(make_engine_root(f"cli-{name}-"))
                           .start())
        b = started[0]
        daemon.trust(b.certificate_pem, "daemon-b")
        b.trust(daemon.certificate_pem, "daemon-a")
        yield tuple(started)
    finally:
        for proc in started:
            if proc.proc is not None:
                proc.stop()
            cleanup_root(proc.root)


@pytest.fixture
def two(daemon, other_daemons, tmp_path) -> Nlxc:
    """An nlxc with remotes a, b and c over HTTPS, trusted by each."""
    conf = tmp_path / "nlxc"
    run = Nlxc(daemon, conf)
    for name, proc in zip("abc", (daemon, *other_daemons), strict=True):
        on = Nlxc(proc, conf)
        token = on.out("trust", "add", f"cli-{tmp_path.name}-{name}")
        run("remote", "add", name, proc.url, "--token",
            token.strip().splitlines()[-1])
    return run


def _names(nlxc: Nlxc, remote: str) -> list[str]:
    return sorted(i["name"] for i in json.loads(
        nlxc.out("list", f"{remote}:", "--format", "json")))


def _status(nlxc: Nlxc, name: str) -> str:
    return json.loads(nlxc.out("info", name, "-f", "json"))[
        "instance"]["status"].lower()


def _snapshots(nlxc: Nlxc, name: str) -> list[str]:
    return sorted(s["name"] for s in json.loads(
        nlxc.out("snapshot", "list", name, "--format", "json")))


def _read(nlxc: Nlxc, name: str, path: str = "/root/mark") -> str:
    return nlxc.out("exec", name, "--", "cat", path)


def _marked(nlxc: Nlxc, image: str, name: str, text: str) -> None:
    """A running instance ``name`` holding ``text`` in /root/mark."""
    nlxc("launch", image, name)
    nlxc("exec", name, "--", "sh", "-c", f"echo {text} > /root/mark")


def test_copy_push_pull_and_move(two, busybox_image):
    _marked(two, busybox_image, "cm1", "hello")
    two("snapshot", "create", "cm1", "s0")
    assert "--stateless" in two.fails("copy", "cm1", "b:")
    two("stop", "cm1", "--force")

    # local (unix) -> b (HTTPS): push, A dials B.
    two("copy", "cm1", "b:")
    assert _snapshots(two, "b:cm1") == ["s0"]
    # a -> b, both HTTPS: pull, B dials A; the snapshots stay behind.
    two("copy", "a:cm1", "b:cm2", "--instance-only")
    assert _snapshots(two, "b:cm2") == []
    assert "already exists" in two.fails("copy", "a:cm1", "b:cm2")
    assert "new name" in two.fails("copy", "cm1", "a:")
    two("copy", "a:cm1", "cm4")  # one daemon: a copy there, and
    two("move", "cm4", "a:cm3")  # a rename
    assert {"cm1", "cm3"} <= set(_names(two, "local"))
    assert "cm4" not in _names(two, "a")

    # Moves: the source goes once the target has it, and runs its files.
    two("move", "a:cm3", "b:moved")
    assert "cm3" not in _names(two, "a")
    two("start", "b:moved")
    assert _read(two, "b:moved") == "hello\n"
    for name in ("cm1", "cm2"):
        two("start", f"b:{name}")
        assert _read(two, f"b:{name}") == "hello\n"
    assert _status(two, "cm1") == "stopped"
    # Back again, running: b is HTTPS, so A pulls from it.
    two("move", "b:moved", "local:back", "--stateless")
    assert "moved" not in _names(two, "b")
    assert _status(two, "back") == "running"
    assert _read(two, "back") == "hello\n"
    for name in ("b:cm1", "b:cm2", "cm1", "back"):
        two("delete", "--force", name)


def test_move_of_a_running_instance(two, busybox_image):
    _marked(two, busybox_image, "run1", "still here")
    message = two.fails("move", "run1", "b:")
    assert "running" in message and "--stateless" in message
    # --live reaches the daemon, which says why it cannot (the instance
    # is not stateful; or CRIU, on a host where it does not work).
    message = two.fails("move", "run1", "b:", "--live")
    assert "Live migration of run1 is not possible" in message
    assert "run1" not in _names(two, "b")
    assert _status(two, "run1") == "running"

    two("move", "run1", "b:", "--stateless")
    assert "run1" not in _names(two, "local")
    assert _status(two, "b:run1") == "running"
    assert _read(two, "b:run1") == "still here\n"
    two("delete", "--force", "b:run1")


def test_daemons_that_do_not_trust_each_other(two, busybox_image):
    _marked(two, busybox_image, "lone", "mine")
    two("stop", "lone", "--force")
    for source, hint in (("a:lone", "remote 'a' must trust"),  # pull
                         ("lone", "remote 'c' must trust")):  # push
        message = two.fails("copy", source, "c:")
        assert "403" in message and hint in message, message
        assert _names(two, "c") == []
    message = two.fails("move", "a:lone", "c:")
    assert "trust" in message
    assert _names(two, "c") == []
    assert _status(two, "lone") == "stopped"
    two("start", "lone")
    assert _read(two, "lone") == "mine\n"
    two("delete", "--force", "lone")


def test_two_unix_sockets_cannot_reach_each_other(two, other_daemons,
                                                   tmp_path):
    b = other_daemons[0]
    config = tmp_path / "nlxc" / "config.yml"
    config.write_text(config.read_text().replace(
        "remotes:", f"remotes:\n  bsock:\n    addr: unix://{b.socket}", 1))
    message = two.fails("copy", "x", "bsock:")
    assert "cannot reach each other" in message


@pytest.mark.skipif(criu.problem() is not None,
                    reason=f"CRIU does not work here: {criu.problem()}")
def test_live_move_keeps_the_processes(two, busybox_image):
    two("launch", busybox_image, "lv1", "-c", "migration.stateful=true")
    two("exec", "lv1", "--", "sh", "-c",
        "setsid sleep 1000 </dev/null >/dev/null 2>&1 &")
    pid = two.out("exec", "lv1", "--", "pidof", "sleep").strip()
    two("move", "lv1", "b:", "--live")
    assert "lv1" not in _names(two, "local")
    assert _status(two, "b:lv1") == "running"
    assert two.out("exec", "b:lv1", "--", "pidof", "sleep").strip() == pid
    two("delete", "--force", "b:lv1")
