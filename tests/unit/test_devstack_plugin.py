"""The DevStack plugin, phase by phase, against stand-ins of DevStack's
helpers (DevStack itself cannot run here: it clones from code hosts).

Each stand-in is a small shell function that records its call; the
plugin is sourced in one shell for every phase, as stack.sh does, and
the test checks what it would install, write and run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEVSTACK = REPO / "devstack"

HARNESS = r"""
set -eu
CALLS=$WORK/calls
record() { local IFS=$'\t'; printf '%s\n' "$*" >>"$CALLS"; }
is_service_enabled() {
    local s
    for s in "$@"; do
        case " $ENABLED_SERVICES " in *" $s "*) return 0 ;; esac
    done
    return 1
}
install_package() { record install_package "$@"; }
setup_develop() { record setup_develop "$@"; }
pip_install() { record pip_install "$@"; }
echo_summary() { :; }
iniset() { [ "$1" = -sudo ] && shift; record iniset "$@"; }
run_process() { record run_process "$@"; }
openstack() {
    record openstack "$@"
    case "$1 $2" in
        "image list")
            [ -z "${IMAGES_EXIST:-}" ] || printf 'busybox\ndebian-bookworm\n'
            ;;
        "image show")
            [ -n "${IMAGES_EXIST:-}" ] || return 1
            echo "id-of-$3" ;;
    esac
}
# sudo: recorded; file writes run (on the test's own paths, without
# changing owners), python is faked (the real one builds images).
sudo() {
    record sudo "$@"
    case "$1" in
        tee) "$@" ;;
        install)
            local args=() skip=0 a
            for a in "$@"; do
                if [ "$skip" = 1 ]; then skip=0; continue; fi
                case "$a" in -o|-g) skip=1; continue ;; esac
                args+=("$a")
            done
            "${args[@]}" ;;
        */python3)
            case "$*" in
                *build_images.py*)
                    printf 'busybox\t%s\traw\n' "$WORK/busybox.tar.gz"
                    printf 'debian-bookworm\t%s\tqcow2\n' "$WORK/deb.qcow2"
                    ;;
            esac ;;
    esac
}

DEST=$WORK/opt/stack
NOVA_CONF=$WORK/nova.conf
NOVA_CPU_CONF=$WORK/nova-cpu.conf
NOVA_BIN_DIR=$WORK/venv/bin
PYTHON=$WORK/venv/bin/python3
STACK_USER=stack
TEMPEST_CONFIG=$WORK/tempest.conf
NOVA_LXD_DIR=$REPO
NOVA_LXD_ENGINE_ROOT=$WORK/engine
NOVA_LXD_IMAGE_CACHE=$WORK/images
NOVA_LXD_SUBUID_FILE=$WORK/subuid
NOVA_LXD_SUBGID_FILE=$WORK/subgid
NOVA_LXD_SUDOERS_FILE=$WORK/sudoers

# shellcheck source=/dev/null
. "$REPO/devstack/settings"
for phase in pre-install install post-config extra test-config; do
    record PHASE "$phase"
    # shellcheck source=/dev/null
    . "$REPO/devstack/plugin.sh" stack "$phase"
done
record PHASE start
run_process n-api "$NOVA_BIN_DIR/nova-api --config-file $NOVA_CONF"
run_process n-cpu "$NOVA_BIN_DIR/nova-compute --config-file $NOVA_CPU_CONF"
mkdir -p "$NOVA_LXD_ENGINE_ROOT/containers"
for mode in unstack clean; do
    record PHASE "$mode"
    # shellcheck source=/dev/null
    . "$REPO/devstack/plugin.sh" "$mode"
done
"""


def run_plugin(tmp_path: Path, services: str,
               images_exist: bool = False) -> dict[str, list[list[str]]]:
    """Run every phase; the recorded calls, by phase."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "WORK": str(tmp_path),
           "REPO": str(REPO), "ENABLED_SERVICES": services,
           "IMAGES_EXIST": "1" if images_exist else ""}
    proc = subprocess.run(["bash", "-c", HARNESS], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    phases: dict[str, list[list[str]]] = {}
    current = None
    for line in (tmp_path / "calls").read_text().splitlines():
        call = line.split("\t")
        if call[0] == "PHASE":
            current = phases.setdefault(call[1], [])
        else:
            current.append(call)
    return phases


ALL = "key g-api placement-api n-api n-cond n-sch n-cpu tempest"


@pytest.fixture
def phases(tmp_path):
    return run_plugin(tmp_path, ALL)


def inisets(calls, path):
    return {(c[2], c[3]): c[4] for c in calls
            if c[0] == "iniset" and c[1] == path}


def test_pre_install_packages_and_subids(phases, tmp_path):
    packages = [c for c in phases["pre-install"]
                if c[0] == "install_package"]
    assert len(packages) == 1
    for needed in ("lxc", "uidmap", "busybox-static", "qemu-utils",
                   "debootstrap", "sudo"):
        assert needed in packages[0][1:]
    for name in ("subuid", "subgid"):
        assert (tmp_path / name).read_text() == "root:1000000:1000000000\n"


def test_subids_are_not_added_twice(tmp_path):
    (tmp_path / "subuid").write_text("root:1000000:1000000000")
    (tmp_path / "subgid").write_text("stack:100000:65536")
    run_plugin(tmp_path, ALL)
    assert (tmp_path / "subuid").read_text() == "root:1000000:1000000000"
    assert (tmp_path / "subgid").read_text() == (
        "stack:100000:65536\nroot:1000000:1000000000\n")


def test_install_the_project(phases):
    assert phases["install"] == [["setup_develop", str(REPO)]]


def test_post_config_nova(phases, tmp_path):
    conf = inisets(phases["post-config"], str(tmp_path / "nova.conf"))
    assert conf[("DEFAULT", "compute_driver")] == "lxd.LXCDriver"
    assert conf[("lxc", "root")] == str(tmp_path / "engine")
    assert conf[("lxc", "allow_privileged_flavors")] == "False"
    bindir = tmp_path / "venv/bin"
    cpu_conf = tmp_path / "nova-cpu.conf"
    assert conf[("nova_lxd_privileged", "helper_command")] == (
        f"sudo {bindir}/privsep-helper --config-file {cpu_conf}")
    # The engine root is traversable, not readable, by containers.
    assert (tmp_path / "engine").stat().st_mode & 0o777 == 0o711
    sudoers = (tmp_path / "sudoers").read_text()
    assert (f"stack ALL = (root) NOPASSWD: {bindir}/privsep-helper "
            f"--config-file {cpu_conf} --privsep_context "
            "nova_lxd.privsep.engine_context --privsep_sock_path *"
            ) in sudoers


def test_n_cpu_runs_nova_compute_lxd(phases, tmp_path):
    bindir = tmp_path / "venv/bin"
    assert phases["start"] == [
        ["run_process", "n-api",
         f"{bindir}/nova-api --config-file {tmp_path}/nova.conf"],
        ["run_process", "n-cpu",
         f"{bindir}/nova-compute-lxd --config-file "
         f"{tmp_path}/nova-cpu.conf"],
    ]


def test_extra_uploads_both_images(phases, tmp_path):
    creates = [c for c in phases["extra"]
               if c[:3] == ["openstack", "image", "create"]]
    assert len(creates) == 2
    busybox, debian = creates
    assert busybox[3] == "busybox"
    assert busybox[busybox.index("--disk-format") + 1] == "raw"
    assert busybox[busybox.index("--container-format") + 1] == "bare"
    assert busybox[busybox.index("--file") + 1] == str(
        tmp_path / "busybox.tar.gz")
    assert debian[3] == "debian-bookworm"
    assert debian[debian.index("--disk-format") + 1] == "qcow2"
    for image in creates:
        assert "hypervisor_type=lxc" in image
        assert "--public" in image
    built = [c for c in phases["extra"] if c[0] == "sudo"]
    assert built and built[0][2].endswith("devstack/tools/build_images.py")
    assert built[0][3] == str(tmp_path / "images")


def test_extra_keeps_existing_images(tmp_path):
    phases = run_plugin(tmp_path, ALL, images_exist=True)
    assert not [c for c in phases["extra"]
                if c[:3] == ["openstack", "image", "create"]]


def test_test_config_tempest_flags(phases, tmp_path):
    conf = inisets(phases["test-config"], str(tmp_path / "tempest.conf"))
    flags = {k[1]: v for k, v in conf.items()
             if k[0] == "compute-feature-enabled"}
    for supported in ("pause", "suspend", "console_output"):
        assert flags[supported] == "True"
    for unsupported in ("resize", "live_migration", "cold_migration",
                        "shelve", "snapshot", "rescue",
                        "interface_attach", "vnc_console"):
        assert flags[unsupported] == "False"
    # The images uploaded in "extra" (the stand-in says none exist).
    assert ("compute", "image_ref") in conf


def test_clean_removes_containers_and_state(phases, tmp_path):
    clean = phases["clean"]
    assert clean[0] == ["sudo", str(tmp_path / "venv/bin/python3"),
                        str(DEVSTACK / "tools/remove_containers.py"),
                        str(tmp_path / "engine")]
    assert ["sudo", "rm", "-rf", str(tmp_path / "engine"),
            str(tmp_path / "images")] in clean
    assert phases["unstack"] == []


def test_controller_without_compute(tmp_path):
    phases = run_plugin(tmp_path, "key g-api n-api n-cond n-sch")
    assert phases["pre-install"] == []
    assert not [c for c in phases["post-config"] if c[0] == "iniset"]
    assert not (tmp_path / "subuid").exists()
    # Images are still uploaded where Glance runs; no tempest, no flags.
    assert [c for c in phases["extra"] if c[:3] == ["openstack", "image",
                                                    "create"]]
    assert phases["test-config"] == []
    # n-cpu is not wrapped where nova-lxd does not run it.
    assert phases["start"][1][2].endswith(
        "/nova-compute --config-file " + str(tmp_path / "nova-cpu.conf"))


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed")
def test_shellcheck_clean():
    files = [DEVSTACK / "plugin.sh", DEVSTACK / "settings",
             DEVSTACK / "lib/nova-lxd", REPO / "tools/cloud.sh",
             REPO / "tools/cloud_demo.sh"]
    proc = subprocess.run(["shellcheck", *map(str, files)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
