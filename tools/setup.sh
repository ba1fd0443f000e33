#!/usr/bin/env bash
# Prepare a Debian 12 or 13 machine, as root, for building and testing
# nova-lxd: system packages, root's subordinate id ranges, and the
# project's virtualenv (.venv at the repository root).
#
# Idempotent: a re-run on a prepared machine checks and does nothing
# (a few seconds). `apt-get update` runs only when a package is missing;
# pip runs only when requirements*.txt, setup.cfg or setup.py changed
# since the last successful install (hash stamped inside .venv).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO/.venv"
STAMP="$VENV/.nova-lxd-install.sha256"
# Debian's interpreter, never a pyenv or other python found on PATH.
PYTHON=/usr/bin/python3
# Root's subordinate range: room for ~15,000 containers of 65,536 ids.
SUB_START=1000000
SUB_COUNT=1000000000

export DEBIAN_FRONTEND=noninteractive

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

check_platform() {
    [ "$(id -u)" -eq 0 ] || die "run as root (apt-get, /etc/subuid)"
    [ -r /etc/os-release ] || die "not Debian: /etc/os-release is missing"
    # shellcheck source=/dev/null
    . /etc/os-release
    [ "${ID:-}" = debian ] \
        || die "not Debian (ID=${ID:-unknown}): Debian 12 or 13 is required"
    case "${VERSION_ID:-}" in
        12|13) ;;
        *) say "warning: Debian ${VERSION_ID:-testing/unstable} is untested" \
               "(12 and 13 are)" ;;
    esac
}

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}

apt_updated=no
apt_update() {
    if [ "$apt_updated" = no ]; then
        say "apt-get update"
        apt-get update -qq
        apt_updated=yes
    fi
}

# The liblxc headers for the PyPI "lxc" binding: lxc-dev on Debian 12,
# liblxc-dev from Debian 13 on.
lxc_dev_package() {
    case "${VERSION_ID:-}" in
        12) echo lxc-dev; return ;;
        13) echo liblxc-dev; return ;;
    esac
    if is_installed liblxc-dev; then echo liblxc-dev; return; fi
    if is_installed lxc-dev; then echo lxc-dev; return; fi
    apt_update >&2
    if apt-cache show liblxc-dev >/dev/null 2>&1; then
        echo liblxc-dev
    else
        echo lxc-dev
    fi
}

install_packages() {
    local pkgs=(
        lxc "$(lxc_dev_package)" uidmap busybox-static qemu-utils
        btrfs-progs xfsprogs debootstrap python3-venv python3-dev gcc
        pkg-config zstd xz-utils bzip2 iproute2 shellcheck fdisk squashfs-tools dosfstools
        openvswitch-switch criu iptables
    )
    local missing=() p
    for p in "${pkgs[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "system packages: all ${#pkgs[@]} present"
        return
    fi
    apt_update
    say "apt-get install ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# With uidmap installed liblxc maps ids through newuidmap even as root,
# so root needs a subordinate range or unprivileged containers fail
# with "uid range not allowed".
ensure_subids() {
    local f
    for f in /etc/subuid /etc/subgid; do
        [ -e "$f" ] || install -m 0644 /dev/null "$f"
        if awk -F: -v n="$SUB_COUNT" \
                '($1 == "root" || $1 == "0") && $3 + 0 >= n { ok = 1 }
                 END { exit !ok }' "$f"; then
            say "$f: root has a range of at least $SUB_COUNT ids"
        else
            # Never glue the new line onto a last line without a newline.
            if [ -s "$f" ] && [ -n "$(tail -c1 "$f")" ]; then
                echo >>"$f"
            fi
            printf 'root:%s:%s\n' "$SUB_START" "$SUB_COUNT" >>"$f"
            say "$f: added root:$SUB_START:$SUB_COUNT"
        fi
    done
}

# Stateful snapshots and live moves need a CRIU whose `criu check`
# passes; Debian 12's does not on recent kernels. Best effort: without
# one, the engine refuses those with CRIU's reason and their tests skip.
ensure_criu() {
    if ! bash "$REPO/tools/build-criu.sh"; then
        say "warning: no working CRIU: stateful snapshots and live moves" \
            "are refused on this host"
    fi
}

venv_is_usable() {
    local base want
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/pip" ] || return 1
    base=$("$VENV/bin/python" -c \
        'import sys; print(sys.base_prefix, sys.version_info[:2])' \
        2>/dev/null) || return 1
    want=$("$PYTHON" -c \
        'import sys; print(sys.base_prefix, sys.version_info[:2])')
    [ "$base" = "$want" ]
}

requirements_hash() {
    (cd "$REPO" && sha256sum requirements.txt test-requirements.txt \
        setup.cfg setup.py && "$PYTHON" --version) | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    [ -x "$PYTHON" ] || die "$PYTHON is missing (python3-venv not installed?)"
    if ! venv_is_usable; then
        if [ -e "$VENV" ]; then
            say "venv: $VENV is not a working venv of $PYTHON: recreating"
            rm -rf "$VENV"
        fi
        say "venv: creating $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV"
    fi
    local want
    want=$(requirements_hash)
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        say "venv: requirements unchanged, pip skipped"
        return
    fi
    rm -f "$STAMP"
    local pip=("$VENV/bin/python" -m pip install -qq
               --disable-pip-version-check --root-user-action=ignore)
    say "venv: upgrading pip"
    "${pip[@]}" --upgrade pip
    say "venv: installing nova-lxd (editable) and test requirements"
    (cd "$REPO" && "${pip[@]}" -e . -r test-requirements.txt)
    printf '%s\n' "$want" >"$STAMP"
    say "venv: ready"
}

main() {
    local t0=$SECONDS
    check_platform
    install_packages
    ensure_subids
    ensure_criu
    ensure_venv
    say "done in $((SECONDS - t0)) s"
}

main "$@"
