"""``nlxc`` end to end over the daemon's unix socket: images, launch,
list, exec, files, snapshots, config, stop and delete, and the errors a
user sees (one line, exit status 1, never a traceback)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time


def test_image_import_list_and_alias(nlxc, busybox_image):
    images = json.loads(nlxc.out("image", "list", "--format", "json"))
    assert [a["name"] for a in images[0]["aliases"]] == ["busybox"]
    fingerprint = images[0]["fingerprint"]
    table = nlxc.out("image", "list")
    assert f"| busybox | {fingerprint[:12]} |" in table
    nlxc("image", "alias", "create", "bb2", fingerprint[:12])
    aliases = json.loads(nlxc.out("image", "alias", "list", "-f", "json"))
    assert {a["name"] for a in aliases} == {"busybox", "bb2"}
    nlxc("image", "alias", "delete", "bb2")
    assert "bb2" not in nlxc.out("image", "alias", "list")


def test_instance_end_to_end(nlxc, busybox_image, tmp_path):
    nlxc("launch", busybox_image, "c1", "-c", "limits.memory=256MiB")
    table = nlxc.out("list")
    assert "| c1   | RUNNING |" in table
    listed = json.loads(nlxc.out("list", "--format", "json"))
    assert [(i["name"], i["status"]) for i in listed] == [("c1", "Running")]
    info = json.loads(nlxc.out("info", "c1", "--format", "json"))
    assert info["instance"]["config"]["limits.memory"] == "256MiB"
    assert info["state"]["pid"] > 0
    assert "Status: RUNNING" in nlxc.out("info", "c1")

    # exec: exit code, stdout and stderr apart, stdin forwarded
    result = nlxc("exec", "c1", "--", "sh", "-c",
                  "echo out; echo err >&2; exit 7", check=False)
    assert result.returncode == 7
    assert result.stdout == b"out\n" and result.stderr == b"err\n"
    result = nlxc("exec", "c1", "--", "cat", input=b"piped\n")
    assert result.stdout == b"piped\n"
    result = nlxc("exec", "--env", "X=42", "c1", "--", "sh", "-c",
                  "echo $X")
    assert result.stdout == b"42\n"

    # files both ways, with owner and mode
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from the host\n")
    nlxc("file", "push", str(src), "c1/root/", "--uid", "1000",
         "--mode", "0640")
    listing = nlxc.out("exec", "c1", "--", "ls", "-ln", "/root/hello.txt")
    assert listing.startswith("-rw-r-----") and " 1000 " in listing
    nlxc("file", "pull", "c1/root/hello.txt", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    assert (tmp_path / "back").stat().st_mode & 0o777 == 0o640
    assert nlxc("file", "pull", "c1/root/hello.txt", "-").stdout == (
        src.read_bytes())

    # snapshots: create, list, restore brings the file back, delete
    assert "snap0" in nlxc.out("snapshot", "create", "c1")
    nlxc("exec", "c1", "--", "rm", "/root/hello.txt")
    snaps = json.loads(nlxc.out("snapshot", "list", "c1", "-f", "json"))
    assert [s["name"] for s in snaps] == ["snap0"]
    nlxc("snapshot", "restore", "c1", "snap0")
    assert nlxc.out("exec", "c1", "--", "cat", "/root/hello.txt") == (
        "hello from the host\n")
    nlxc("snapshot", "delete", "c1", "snap0")
    assert json.loads(nlxc.out("snapshot", "list", "c1", "-f", "json")) \
        == []

    # limits through PATCH
    nlxc("config", "set", "c1", "limits.memory=512MiB")
    assert nlxc.out("config", "get", "c1", "limits.memory") == "512MiB\n"

    # lifecycle
    nlxc("freeze", "c1")
    assert nlxc.out("list", "-f", "csv").startswith("c1,FROZEN,")
    nlxc("unfreeze", "c1")
    nlxc("stop", "c1", "--timeout", "5")
    assert nlxc.out("list", "-f", "csv").startswith("c1,STOPPED,")
    nlxc("start", "c1")
    assert "booted c1" in nlxc.out("console", "c1", "--show-log")
    nlxc("delete", "--force", "c1")
    assert json.loads(nlxc.out("list", "--format", "json")) == []


def test_errors_are_one_line(nlxc, busybox_image, tmp_path):
    assert "not found" in nlxc.fails("info", "nope")
    assert "not found" in nlxc.fails("launch", "no-such-image", "c2")
    assert "not found" in nlxc.fails("stop", "nope")
    assert "KEY=VALUE" in nlxc.fails("config", "set", "nope", "novalue")
    assert "INSTANCE/PATH" in nlxc.fails("file", "pull", "nope", "x")
    assert "remote 'x' does not exist" in nlxc.fails("list", "x:")
    assert "cannot read" in nlxc.fails("file", "push",
                                       str(tmp_path / "missing"),
                                       "c2/tmp/x")
    nlxc("launch", busybox_image, "c2")
    try:
        assert "stop it first or use --force" in nlxc.fails("delete", "c2")
        assert "limits.* keys" in nlxc.fails("config", "set", "c2",
                                             "foo=bar")
        assert nlxc.fails("file", "pull", "c2/no/such/file", "-")
        result = nlxc("exec", "c2", "--", "/no/such/command", check=False)
        assert result.returncode != 0
        nlxc("launch", "--no-start", busybox_image, "c3")
        assert "stopped" in nlxc.fails("exec", "c3", "--", "true")
    finally:
        nlxc("delete", "--force", "c2")
        nlxc("delete", "c3", check=False)


def test_unreachable_daemon_says_where(nlxc, tmp_path):
    nlxc.env["NLXC_SOCKET"] = str(tmp_path / "gone.sock")
    message = nlxc.fails("list")
    assert str(tmp_path / "gone.sock") in message
    assert "is nlxd running" in message
    assert not os.path.exists(tmp_path / "nlxc" / "config.yml")


def test_interactive_exec_on_a_pty(nlxc, busybox_image):
    """On a terminal, exec gets a pty of the terminal's size, and the
    exit code still comes back."""
    nlxc("launch", busybox_image, "tty1")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ,
                struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nova_lxd.cli.main", "exec", "tty1",
         "--", "sh"], env=nlxc.env, stdin=slave, stdout=slave,
        stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        os.write(master, b"stty size; echo $TERM; exit 5\n")
        seen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: nlxc has exited
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(30) == 5, seen
        assert b"33 101" in seen, seen
        assert b"Traceback" not in seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        nlxc("delete", "--force", "tty1")
