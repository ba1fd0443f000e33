"""The client against a fake LXD server on a unix socket: envelopes,
operations, error mapping, and whole commands through ``main``."""

from __future__ import annotations

import json

import pytest

from nova_lxd.cli.client import Client, operation_path
from nova_lxd.cli.config import Config
from nova_lxd.cli.errors import (
    ApiError,
    Conflict,
    ConnectionFailed,
    NotFound,
)
from nova_lxd.cli.main import main
from tests.unit.cli.fakeserver import async_, error, operation, sync

INSTANCE = {"name": "c1", "status": "Running", "type": "container",
            "config": {"limits.memory": "512MiB"},
            "state": {"network": {"eth0": {"addresses": [
                {"family": "inet", "address": "10.1.2.3",
                 "scope": "global"}]}}}}


def client():
    return Client(Config().remote("local"))


def test_sync_get(fake):
    assert client().get("/1.0")["environment"]["server_version"] == "fake"


def test_async_call_waits_for_the_operation(fake):
    fake.routes[("POST", "/1.0/instances")] = async_("op1")
    fake.routes[("GET", "/1.0/operations/op1/wait")] = operation(
        "op1", metadata={"x": 1})
    op = client().call("POST", "/1.0/instances", json={"name": "c1"})
    assert op["metadata"] == {"x": 1}
    waits = [r for r in fake.requests if r["path"].startswith(
        "/1.0/operations/op1/wait")]
    assert waits and "timeout=" in waits[0]["path"]


def test_wait_loops_until_done(fake):
    answers = [operation("op2", status_code=103),
               operation("op2", status_code=200)]
    fake.routes[("POST", "/1.0/x")] = async_("op2")
    fake.routes[("GET", "/1.0/operations/op2/wait")] = (
        lambda handler, body: answers.pop(0))
    seen = []
    client().call("POST", "/1.0/x", progress=seen.append)
    assert [o["status_code"] for o in seen] == [103, 200]


def test_failed_operation_raises_its_error(fake):
    fake.routes[("POST", "/1.0/x")] = async_("op3")
    fake.routes[("GET", "/1.0/operations/op3/wait")] = operation(
        "op3", status_code=400, err="Image 'nope' not found")
    with pytest.raises(ApiError, match="Image 'nope' not found"):
        client().call("POST", "/1.0/x")


@pytest.mark.parametrize("status, cls", [(404, NotFound), (409, Conflict),
                                         (400, ApiError)])
def test_error_envelopes_are_typed(fake, status, cls):
    fake.routes[("GET", "/1.0/instances/c9")] = error("the message", status)
    with pytest.raises(cls, match="^the message$") as info:
        client().get("/1.0/instances/c9")
    assert info.value.status == status


def test_error_without_envelope(fake):
    fake.routes[("GET", "/1.0/x")] = (502, b"<html>bad gateway</html>", {})
    with pytest.raises(ApiError, match="502"):
        client().get("/1.0/x")


def test_answer_that_is_not_json(fake):
    fake.routes[("GET", "/1.0/x")] = (200, b"hello", {})
    with pytest.raises(ApiError, match="not JSON"):
        client().get("/1.0/x")


def test_operation_path_from_body():
    assert operation_path({"operation": "/1.0/operations/a"}) == (
        "/1.0/operations/a")
    assert operation_path({"metadata": {"id": "b"}}) == "/1.0/operations/b"
    with pytest.raises(ApiError):
        operation_path({})


def test_connection_error_names_the_socket(tmp_path, monkeypatch):
    monkeypatch.setenv("NLXC_SOCKET", str(tmp_path / "none.sock"))
    with pytest.raises(ConnectionFailed) as info:
        client().get("/1.0")
    text = str(info.value)
    assert str(tmp_path / "none.sock") in text
    assert "No such file or directory" in text
    assert "is nlxd running" in text


# -- whole commands ---------------------------------------------------------


def run(capsys, *argv):
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_table_and_json(fake, capsys):
    fake.routes[("GET", "/1.0/instances")] = sync([INSTANCE])
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "| c1   | RUNNING | 10.1.2.3 (eth0) |" in out
    assert "recursion=2" in fake.requests[-1]["path"]
    code, out, _ = run(capsys, "list", "--format", "json")
    assert json.loads(out)[0]["name"] == "c1"


def test_missing_instance_is_one_line_exit_1(fake, capsys):
    fake.routes[("GET", "/1.0/instances/nope")] = error(
        "Instance not found", 404)
    code, out, err = run(capsys, "info", "nope")
    assert code == 1 and out == ""
    assert err == "Error: Instance not found\n"


def test_unreachable_daemon_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NLXC_SOCKET", str(tmp_path / "gone.sock"))
    code, _, err = run(capsys, "list")
    assert code == 1
    assert err.startswith("Error: cannot connect to the unix socket")
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_launch_resolves_alias_creates_and_starts(fake, capsys):
    fake.routes[("GET", "/1.0/images/aliases/busybox")] = sync(
        {"name": "busybox", "target": "f" * 64})
    fake.routes[("POST", "/1.0/instances")] = async_("create")
    fake.routes[("GET", "/1.0/operations/create/wait")] = operation("create")
    fake.routes[("PUT", "/1.0/instances/c1/state")] = async_("start")
    fake.routes[("GET", "/1.0/operations/start/wait")] = operation("start")
    code, _, _ = run(capsys, "launch", "busybox", "c1",
                     "-c", "limits.memory=256MiB")
    assert code == 0
    posts = {(r["method"], r["path"].split("?")[0]): r["body"]
             for r in fake.requests}
    create = json.loads(posts[("POST", "/1.0/instances")])
    assert create["name"] == "c1"
    assert create["source"] == {"type": "image", "alias": "busybox",
                                "fingerprint": "f" * 64}
    assert create["config"] == {"limits.memory": "256MiB"}
    assert json.loads(posts[("PUT", "/1.0/instances/c1/state")]) == {
        "action": "start"}


def test_config_set_patches(fake, capsys):
    fake.routes[("PATCH", "/1.0/instances/c1")] = async_("p")
    fake.routes[("GET", "/1.0/operations/p/wait")] = operation("p")
    assert run(capsys, "config", "set", "c1", "limits.memory=1GiB")[0] == 0
    patch = [r for r in fake.requests if r["method"] == "PATCH"][0]
    assert json.loads(patch["body"]) == {"config": {
        "limits.memory": "1GiB"}}


def test_delete_refuses_a_running_instance_without_force(fake, capsys):
    fake.routes[("GET", "/1.0/instances/c1")] = sync(INSTANCE)
    code, _, err = run(capsys, "delete", "c1")
    assert code == 1 and "use --force" in err


def test_file_push_sends_headers_and_body(fake, capsys, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello\n")
    src.chmod(0o640)
    fake.routes[("POST", "/1.0/instances/c1/files")] = sync(None)
    assert run(capsys, "file", "push", str(src), "c1/tmp/",
               "--uid", "5")[0] == 0
    req = fake.requests[-1]
    assert req["path"] == "/1.0/instances/c1/files?path=%2Ftmp%2Fhello.txt"
    assert req["body"] == b"hello\n"
    assert req["headers"]["X-LXD-mode"] == "0640"
    assert req["headers"]["X-LXD-uid"] == "5"
    assert req["headers"]["Content-Length"] == "6"


def test_file_push_recursive_mkdir_and_delete(fake, capsys, tmp_path):
    """Directories before what they hold; -p makes each parent."""
    src = tmp_path / "d"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(b"x")
    (src / "link").symlink_to("sub/f")
    for method in ("POST", "DELETE"):
        fake.routes[(method, "/1.0/instances/c1/files")] = sync(None)
    assert run(capsys, "file", "push", "-r", str(src), "c1/srv")[0] == 0
    sent = [(r["path"].split("=")[1], r["headers"]["X-LXD-type"])
            for r in fake.requests[-4:]]
    assert sent == [("%2Fsrv%2Fd", "directory"),
                    ("%2Fsrv%2Fd%2Flink", "symlink"),
                    ("%2Fsrv%2Fd%2Fsub", "directory"),
                    ("%2Fsrv%2Fd%2Fsub%2Ff", "file")]
    assert fake.requests[-3]["body"] == b"sub/f"
    assert run(capsys, "file", "mkdir", "-p", "c1/a/b")[0] == 0
    assert [r["path"] for r in fake.requests[-2:]] == [
        "/1.0/instances/c1/files?path=%2Fa",
        "/1.0/instances/c1/files?path=%2Fa%2Fb"]
    assert run(capsys, "file", "delete", "c1/a/b")[0] == 0
    assert fake.requests[-1]["method"] == "DELETE"


def test_file_pull_writes_mode(fake, capsys, tmp_path):
    fake.routes[("GET", "/1.0/instances/c1/files")] = (
        200, b"data", {"X-LXD-type": "file", "X-LXD-mode": "0600"})
    assert run(capsys, "file", "pull", "c1/etc/x", str(tmp_path))[0] == 0
    assert (tmp_path / "x").read_bytes() == b"data"
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o600


def test_image_import_then_alias(fake, capsys, tmp_path):
    tarball = tmp_path / "img.tar.gz"
    tarball.write_bytes(b"x" * 1000)
    fake.routes[("POST", "/1.0/images")] = async_("imp")
    fake.routes[("GET", "/1.0/operations/imp/wait")] = operation(
        "imp", metadata={"fingerprint": "a" * 64})
    fake.routes[("POST", "/1.0/images/aliases")] = sync(None, 201)
    code, out, _ = run(capsys, "image", "import", str(tarball),
                       "--alias", "bb")
    assert code == 0
    upload = [r for r in fake.requests if r["path"] == "/1.0/images"][0]
    assert upload["headers"]["Content-Length"] == "1000"
    assert upload["headers"]["X-LXD-filename"] == "img.tar.gz"
    alias = json.loads(fake.requests[-1]["body"])
    assert alias == {"name": "bb", "target": "a" * 64, "description": ""}


def test_version(fake, capsys):
    code, out, _ = run(capsys, "version", "--format", "json")
    assert code == 0 and json.loads(out)["server_version"] == "fake"
