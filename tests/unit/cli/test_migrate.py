"""``copy``/``move``: arguments and the choice of migration mode (no
server needed)."""

from __future__ import annotations

import pytest

from nova_lxd.cli.commands import instances, migrate
from nova_lxd.cli.config import Config, Remote
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import CliError
from nova_lxd.cli.main import build_parser

UNIX_A = Remote("local", "unix:///run/a.socket")
UNIX_B = Remote("other", "unix:///run/b.socket")
HTTPS_A = Remote("a", "https://a:8443", "aa")
HTTPS_B = Remote("b", "https://b:8443", "bb")


@pytest.fixture
def ctx(monkeypatch) -> Context:
    monkeypatch.setenv("NLXC_SOCKET", "/run/a.socket")
    config = Config()
    for remote in (UNIX_B, HTTPS_A, HTTPS_B):
        config.add_remote(remote)
    return Context(config)


@pytest.mark.parametrize("source, target, mode", [
    (HTTPS_A, HTTPS_B, migrate.PULL),
    (HTTPS_A, UNIX_A, migrate.PULL),
    (UNIX_A, HTTPS_B, migrate.PUSH),
    (HTTPS_A, HTTPS_A, migrate.SAME),
    (UNIX_A, Remote("again", "unix:///run/a.socket"), migrate.SAME),
])
def test_the_reachable_daemon_is_dialed(source, target, mode):
    assert migrate.choose_mode(source, target) == mode


def test_two_unix_daemons_cannot_reach_each_other():
    with pytest.raises(CliError, match="cannot reach each other"):
        migrate.choose_mode(UNIX_A, UNIX_B)


def test_plan_names_and_remotes(ctx):
    p = migrate.plan(ctx, "c1", "b:")
    assert (p.source.remote, p.target, p.mode) == (
        "local", migrate.Target("b", "c1"), migrate.PUSH)
    p = migrate.plan(ctx, "a:c1", "b:c2")
    assert (p.target.name, p.mode) == ("c2", migrate.PULL)
    assert migrate.plan(ctx, "c1", "c2").mode == migrate.SAME
    assert migrate.plan(ctx, "c1/snap0", None).target.name == "c1"
    with pytest.raises(CliError, match="name is required"):
        migrate.plan(ctx, "b:", "a:")
    with pytest.raises(CliError, match="does not exist"):
        migrate.plan(ctx, "c1", "nowhere:c1")


def test_parsing():
    parse = build_parser().parse_args
    args = parse(["copy", "c1", "b:", "--instance-only", "--stateless"])
    assert (args.func, args.source, args.destination) == (
        migrate.copy, "c1", "b:")
    assert args.instance_only and args.stateless and not args.live
    assert parse(["cp", "c1"]).destination is None
    args = parse(["mv", "c1", "b:c2", "--live"])
    assert args.func is migrate.move and args.live
    assert parse(["rename", "c1", "c2"]).func is instances.rename
    with pytest.raises(SystemExit):
        parse(["move", "c1"])
