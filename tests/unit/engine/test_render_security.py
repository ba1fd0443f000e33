import logging
from pathlib import Path

import pytest

from nova_lxd.engine.errors import InvalidInput
from nova_lxd.engine.render.security import render_security
from nova_lxd.engine.security import apparmor, capabilities, seccomp

PROFILE = Path("/var/lib/nova-lxd/containers/c1/seccomp.profile")


@pytest.fixture(autouse=True)
def fresh_warnings():
    apparmor.reset_warnings()
    yield
    apparmor.reset_warnings()


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING]


# -- seccomp ---------------------------------------------------------------

def test_profile_is_a_v2_denylist_with_lxd_defaults():
    lines = seccomp.profile_text().splitlines()
    assert lines[:2] == ["2", "denylist"]
    assert "[all]" in lines and "reject_force_umount" in lines
    rules = lines[lines.index("reject_force_umount") + 1:]
    assert rules[0] == "[all]"
    for name in ("kexec_load", "open_by_handle_at", "init_module",
                 "finit_module", "delete_module", "kexec_file_load"):
        assert f"{name} errno 38" in rules[1:]
    assert seccomp.profile_text().endswith("\n")


def test_write_profile(tmp_path):
    path = tmp_path / "seccomp.profile"
    seccomp.write_profile(path)
    assert path.read_text() == seccomp.profile_text()
    assert path.stat().st_mode & 0o777 == 0o600


# -- capabilities ------------------------------------------------------------

def test_dropped_capabilities_include_lxds():
    dropped = capabilities.cap_drop().split()
    assert {"sys_module", "mac_admin", "mac_override", "sys_time",
            "sys_rawio"} <= set(dropped)
    # sys_boot must stay: liblxc turns the container's reboot into a
    # restart through it.
    assert "sys_boot" not in dropped


# -- render_security ---------------------------------------------------------

@pytest.mark.parametrize("privileged", [False, True])
def test_with_apparmor(privileged, caplog):
    pairs = render_security(privileged=privileged, apparmor=True,
                            seccomp_profile_path=PROFILE)
    assert pairs == [
        ("lxc.seccomp.profile", str(PROFILE)),
        ("lxc.cap.drop", capabilities.cap_drop()),
        ("lxc.apparmor.profile", "generated"),
        ("lxc.apparmor.allow_nesting", "0"),
    ]
    assert _warnings(caplog) == []


def test_nesting_lets_apparmor_stack_profiles():
    pairs = dict(render_security(privileged=False, apparmor=True,
                                 seccomp_profile_path=PROFILE, nesting=True))
    assert pairs["lxc.apparmor.allow_nesting"] == "1"


def test_without_apparmor_warns_once_per_process(caplog):
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        pairs = render_security(privileged=False, apparmor=False,
                                seccomp_profile_path=PROFILE)
        assert pairs == [("lxc.seccomp.profile", str(PROFILE)),
                         ("lxc.cap.drop", capabilities.cap_drop())]
    assert _warnings(caplog) == [apparmor.UNAVAILABLE]
    assert apparmor.UNAVAILABLE == (
        "AppArmor is not available in this kernel: containers run without "
        "an LSM profile; seccomp, capabilities and user namespaces still "
        "apply")


def test_privileged_still_gets_seccomp_and_cap_drop(caplog):
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        pairs = dict(render_security(privileged=True, apparmor=False,
                                     seccomp_profile_path=PROFILE))
        assert pairs["lxc.seccomp.profile"] == str(PROFILE)
        assert "sys_module" in pairs["lxc.cap.drop"]
    assert _warnings(caplog) == [apparmor.UNAVAILABLE,
                                 apparmor.PRIVILEGED_UNCONFINED]


@pytest.mark.parametrize("path", ["relative/profile", "/a\nlxc.x = y"])
def test_unsafe_profile_paths_are_refused(path):
    with pytest.raises(InvalidInput):
        render_security(privileged=False, apparmor=True,
                        seccomp_profile_path=Path(path))
