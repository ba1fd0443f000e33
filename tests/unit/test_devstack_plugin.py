"""The DevStack plugin, phase by phase, against stand-ins of DevStack's
helpers (DevStack itself cannot run here: it clones from code hosts).

Each stand-in is a small shell function that records its call; the
plugin is sourced in one shell for every phase, as stack.sh does, and
the test checks what it would install, write and run.
"""

from __future__ import annotations

import hashlib
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
enable_service() {
    local s
    for s in "$@"; do
        case " ${DISABLED_SERVICES:-} " in *" $s "*) continue ;; esac
        is_service_enabled "$s" || ENABLED_SERVICES+=" $s"
    done
}
install_package() { record install_package "$@"; }
setup_develop() { record setup_develop "$@"; }
pip_install() { record pip_install "$@"; }
echo_summary() { :; }
iniset() { [ "$1" = -sudo ] && shift; record iniset "$@"; }
run_process() {
    record run_process "$@"
    # nlxd as it starts: its server certificate, then its socket.
    if [ "$1" = n-lxd ]; then
        mkdir -p "$NOVA_LXD_DAEMON_STATE_DIR"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -nodes -keyout /dev/null -subj /CN=nlxd -days 1 \
            -out "$NOVA_LXD_DAEMON_STATE_DIR/server.crt" 2>/dev/null
        python3 -c 'import socket, sys
socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$NOVA_LXD_DAEMON_SOCKET"
    fi
}
stop_process() { record stop_process "$@"; }
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

# nlxc: records its socket and arguments; a peer named "known" is
# already trusted.
mkdir -p "$WORK/venv/bin" "$WORK/peers"
cat >"$WORK/venv/bin/nlxc" <<'NLXC'
#!/bin/bash
(IFS=$'\t'; printf '%s\n' "nlxc	NLXC_SOCKET=$NLXC_SOCKET	$*") \
    >>"$WORK/calls"
if [ "$3" = known ]; then
    echo "Error: Certificate already in trust store" >&2
    exit 1
fi
echo "Certificate $3 trusted"
NLXC
chmod +x "$WORK/venv/bin/nlxc"
for peer in compute2 known; do
    echo "PEM of $peer" >"$WORK/peers/$peer.crt"
done

DEST=$WORK/opt/stack
HOST_IP=192.0.2.10
HOST_IPV6=2001:db8::10
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
NOVA_LXD_DAEMON_CONF=$WORK/etc/nova-lxd/nlxd.conf
NOVA_LXD_DAEMON_TIMEOUT=2

# shellcheck source=/dev/null
. "$REPO/devstack/settings"
for phase in pre-install install post-config extra test-config; do
    record PHASE "$phase"
    # shellcheck source=/dev/null
    . "$REPO/devstack/plugin.sh" stack "$phase" >>"$WORK/out.$phase"
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


def run_harness(tmp_path: Path, services: str, **settings: str):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "WORK": str(tmp_path),
           "REPO": str(REPO), "ENABLED_SERVICES": services, **settings}
    return subprocess.run(["bash", "-c", HARNESS], env=env,
                          capture_output=True, text=True, timeout=60)


def run_plugin(tmp_path: Path, services: str,
               images_exist: bool = False,
               **settings: str) -> dict[str, list[list[str]]]:
    """Run every phase; the recorded calls, by phase. ``settings``: more
    variables (local.conf's)."""
    proc = run_harness(tmp_path, services,
                       IMAGES_EXIST="1" if images_exist else "", **settings)
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
    for supported in ("pause", "suspend", "console_output", "snapshot",
                      "rescue", "resize", "cold_migration"):
        assert flags[supported] == "True"
    # Live migration needs CRIU: refused by the driver's pre-checks.
    for unsupported in ("live_migration",
                        "block_migration_for_live_migration",
                        "shelve", "interface_attach", "vnc_console"):
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
    # nlxd's configuration goes; its state is under the engine root.
    conf = tmp_path / "etc/nova-lxd/nlxd.conf"
    assert ["sudo", "rm", "-f", str(tmp_path / "sudoers"), str(conf)
            ] in clean
    assert ["sudo", "rmdir", "--ignore-fail-on-non-empty",
            str(conf.parent)] in clean


def test_unstack_stops_nlxd_only(phases):
    # Containers keep running: nlxd holds no container state.
    assert phases["unstack"] == [["stop_process", "n-lxd"]]


def stack_group() -> str:
    import grp
    import pwd
    try:
        return grp.getgrgid(pwd.getpwnam("stack").pw_gid).gr_name
    except KeyError:
        return "stack"


def test_post_config_starts_nlxd_as_root(phases, tmp_path):
    post = phases["post-config"]
    conf_path = tmp_path / "etc/nova-lxd/nlxd.conf"
    socket = tmp_path / "engine/daemon/unix.socket"
    daemon = inisets(post, str(conf_path))
    assert daemon == {
        ("lxc", "root"): str(tmp_path / "engine"),
        ("lxc", "idmap_user"): "root",
        ("daemon", "https_address"): "192.0.2.10:8443",
        ("daemon", "state_dir"): str(tmp_path / "engine/daemon"),
        ("daemon", "socket_path"): str(socket),
        # nova-compute runs as STACK_USER: its group opens the socket.
        ("daemon", "socket_group"): stack_group(),
    }
    assert conf_path.parent.is_dir()
    nova = inisets(post, str(tmp_path / "nova.conf"))
    assert nova[("lxc", "daemon_socket")] == str(socket)
    # Started in post-config, before n-cpu, as root.
    started = [c for c in post if c[0] == "run_process"]
    assert started == [["run_process", "n-lxd",
                        f"{tmp_path}/venv/bin/nlxd --config-file "
                        f"{conf_path}", "", "root"]]
    assert [c[1] for c in phases["start"]] == ["n-api", "n-cpu"]


def test_nlxd_address_ipv6_port_and_storage(tmp_path):
    phases = run_plugin(tmp_path, ALL, SERVICE_IP_VERSION="6",
                        NOVA_LXD_DAEMON_PORT="9443",
                        NOVA_LXD_STORAGE_DRIVER="btrfs",
                        NOVA_LXD_STORAGE_SIZE="4294967296")
    post = phases["post-config"]
    daemon = inisets(post, str(tmp_path / "etc/nova-lxd/nlxd.conf"))
    assert daemon[("daemon", "https_address")] == "[2001:db8::10]:9443"
    nova = inisets(post, str(tmp_path / "nova.conf"))
    # nova-compute and nlxd open the same engine root alike.
    for conf in (daemon, nova):
        assert conf[("lxc", "storage_driver")] == "btrfs"
        assert conf[("lxc", "storage_size")] == "4294967296"
        assert ("lxc", "storage_source") not in conf


def nlxc_calls(calls):
    return [c for c in calls if c[0] == "nlxc"]


def test_no_peers_nothing_trusted(phases):
    assert nlxc_calls(phases["extra"]) == []


def test_peer_certificates_trusted(tmp_path):
    peers = tmp_path / "peers"
    phases = run_plugin(
        tmp_path, ALL,
        NOVA_LXD_PEER_CERTS=f"compute2={peers}/compute2.crt "
                            f"known={peers}/known.crt")
    socket = tmp_path / "engine/daemon/unix.socket"
    # "known" is already trusted (a second stack.sh): not an error.
    assert nlxc_calls(phases["extra"]) == [
        ["nlxc", f"NLXC_SOCKET={socket}", "trust", "add", name,
         "--certificate", f"{peers}/{name}.crt"]
        for name in ("compute2", "known")
    ]


@pytest.mark.parametrize("peers", ["compute2", "compute2=/nonexistent.crt"])
def test_bad_peer_certificates_stop_stacking(tmp_path, peers):
    proc = run_harness(tmp_path, ALL, NOVA_LXD_PEER_CERTS=peers)
    assert proc.returncode != 0
    assert "compute2" in proc.stderr


def test_identity_printed_at_the_end(phases, tmp_path):
    cert = tmp_path / "engine/daemon/server.crt"
    der = subprocess.run(["openssl", "x509", "-in", str(cert),
                          "-outform", "DER"], capture_output=True,
                         check=True).stdout
    out = (tmp_path / "out.test-config").read_text()
    assert str(cert) in out
    assert hashlib.sha256(der).hexdigest() in out


def test_n_lxd_can_be_disabled(tmp_path):
    phases = run_plugin(tmp_path, ALL, DISABLED_SERVICES="n-lxd")
    post = phases["post-config"]
    assert not [c for c in post if c[0] == "run_process"]
    assert not inisets(post, str(tmp_path / "etc/nova-lxd/nlxd.conf"))
    assert ("lxc", "daemon_socket") not in inisets(
        post, str(tmp_path / "nova.conf"))
    assert phases["unstack"] == []
    # The driver itself is still configured.
    assert inisets(post, str(tmp_path / "nova.conf"))[
        ("DEFAULT", "compute_driver")] == "lxd.LXCDriver"


def test_controller_without_compute(tmp_path):
    phases = run_plugin(tmp_path, "key g-api n-api n-cond n-sch")
    assert phases["pre-install"] == []
    assert not [c for c in phases["post-config"] if c[0] == "iniset"]
    assert not (tmp_path / "subuid").exists()
    # Images are still uploaded where Glance runs; no tempest, no flags.
    assert [c for c in phases["extra"] if c[:3] == ["openstack", "image",
                                                    "create"]]
    assert phases["test-config"] == []
    # No nlxd where no nova-compute runs.
    assert phases["unstack"] == []
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
