"""Command-line parsing and the pure helpers behind the commands."""

from __future__ import annotations

import base64
import json

import pytest

from nova_lxd.cli.commands import execute, files, instances, remotes
from nova_lxd.cli.commands.snapshots import next_name
from nova_lxd.cli.errors import CliError
from nova_lxd.cli.main import build_parser


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_exec_keeps_the_command_after_double_dash():
    args = parse("exec", "c1", "--", "sh", "-c", "exit 3")
    assert args.name == "c1"
    assert args.command[-3:] == ["sh", "-c", "exit 3"]
    assert args.func is execute.exec_command


def test_exec_options_before_the_name():
    args = parse("exec", "-t", "--env", "A=1", "c1", "--", "ls", "-l")
    assert args.force_interactive and args.env == ["A=1"]
    assert args.command[-2:] == ["ls", "-l"]


def test_exec_interactive_flags_exclude_each_other():
    with pytest.raises(SystemExit):
        parse("exec", "-t", "-T", "c1", "--", "ls")


def test_stop_defaults():
    args = parse("stop", "c1", "c2")
    assert args.names == ["c1", "c2"] and args.timeout == 30
    assert not args.force and args.action == "stop"
    args = parse("stop", "--force", "--timeout", "5", "c1")
    assert args.force and args.timeout == 5


def test_start_has_no_force():
    with pytest.raises(SystemExit):
        parse("start", "--force", "c1")


def test_launch_config_repeatable():
    args = parse("launch", "busybox", "c1", "-c", "limits.memory=512MiB",
                 "-c", "limits.cpu=1")
    assert args.config == ["limits.memory=512MiB", "limits.cpu=1"]
    assert instances.parse_pairs(args.config) == {
        "limits.memory": "512MiB", "limits.cpu": "1"}


def test_every_listing_command_takes_format_json():
    for argv in (["list"], ["info", "c1"], ["image", "list"],
                 ["image", "alias", "list"], ["snapshot", "list", "c1"],
                 ["remote", "list"], ["config", "show", "c1"],
                 ["version"]):
        assert parse(*argv, "--format", "json").format == "json", argv


@pytest.mark.parametrize("pairs, want", [
    (["a=1"], {"a": "1"}),
    (["a=x=y", "b="], {"a": "x=y", "b": ""}),
    (["limits.memory", "1GiB"], {"limits.memory": "1GiB"}),
])
def test_parse_pairs(pairs, want):
    assert instances.parse_pairs(pairs) == want


@pytest.mark.parametrize("pairs", [["novalue"], ["=1"], ["a=1", "b"]])
def test_parse_pairs_refuses(pairs):
    with pytest.raises(CliError, match="KEY=VALUE"):
        instances.parse_pairs(pairs)


def test_mode_and_push_headers():
    assert files.parse_mode("0755") == 0o755
    for bad in ("9", "x", "77777"):
        with pytest.raises(CliError):
            files.parse_mode(bad)
    headers = files.push_headers(0o640, 1000, None)
    assert headers["X-LXD-mode"] == "0640"
    assert headers["X-LXD-uid"] == "1000"
    assert "X-LXD-gid" not in headers
    assert headers["X-LXD-write"] == "overwrite"


def test_snapshot_names():
    assert next_name([]) == "snap0"
    assert next_name(["snap0", "snap2"]) == "snap1"


def _token(**fields):
    data = {"client_name": "me", "fingerprint": "ab" * 32,
            "addresses": ["10.0.0.1:8443"], "secret": "s3cret",
            "expires_at": "2030-01-01T00:00:00Z", **fields}
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_decode_token():
    assert remotes.decode_token(_token())["secret"] == "s3cret"
    raw = _token().rstrip("=")
    assert remotes.decode_token(raw)["client_name"] == "me"
    with pytest.raises(CliError, match="not valid"):
        remotes.decode_token("not a token")


@pytest.mark.parametrize("text, url", [
    ("host", "https://host:8443"),
    ("https://host:9000", "https://host:9000"),
    ("10.0.0.1:8443", "https://10.0.0.1:8443"),
    ("https://[::1]", "https://[::1]:8443"),
])
def test_normalize_url(text, url):
    assert remotes.normalize_url(text) == url


def test_normalize_url_refuses_http():
    with pytest.raises(CliError, match="https"):
        remotes.normalize_url("http://host")


def test_ipv4_column():
    state = {"network": {
        "lo": {"addresses": [{"family": "inet", "address": "127.0.0.1",
                              "scope": "local"}]},
        "eth0": {"addresses": [
            {"family": "inet", "address": "10.0.0.5", "scope": "global"},
            {"family": "inet6", "address": "fe80::1", "scope": "link"}]}}}
    assert instances.ipv4(state) == "10.0.0.5 (eth0)"
    assert instances.ipv4(state, "inet6") == ""
    assert instances.ipv4(None) == ""


def test_console_detach_key_is_ctrl_a_q():
    from nova_lxd.cli.streams import DetachKey
    key = DetachKey()
    assert not key(b"q")
    assert not key(b"abc\x01")
    assert key(b"q")
    assert DetachKey()(b"x\x01q")
    assert not DetachKey()(b"\x01xq")


def test_trust_token_assembled_like_lxd():
    from nova_lxd.cli.commands.trust import token_of
    assert token_of({"token": "ready"}) == "ready"
    meta = {"request": {"name": "laptop"}, "fingerprint": "ab",
            "addresses": ["h:8443"], "secret": "s", "expires_at": "t"}
    decoded = remotes.decode_token(token_of(meta))
    assert decoded["client_name"] == "laptop"
    assert decoded["secret"] == "s"
    with pytest.raises(CliError):
        token_of({"request": {}})
