#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2154,SC2153  # DevStack's variables
#
# DevStack plugin of nova-lxd: nova-compute with the nova-lxd driver.
#
#   enable_plugin nova-lxd <repository> [branch]     (see local.conf)
#
# DevStack sources this file in its own shell at every phase, as
# `plugin.sh MODE PHASE`; the install and configuration logic lives in
# lib/nova-lxd, shared with the one-host cloud (tools/cloud.sh).
#
# Uses DevStack's helpers: is_service_enabled, install_package,
# setup_develop, iniset, openstack, run_process, stop_process, and its
# variables NOVA_CONF, NOVA_CPU_CONF, NOVA_BIN_DIR, PYTHON, STACK_USER,
# TEMPEST_CONFIG, HOST_IP (HOST_IPV6, SERVICE_IP_VERSION).

NOVA_LXD_PLUGIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# nlxc of DevStack's Python (setup_develop installs it beside nova's).
NOVA_LXD_NLXC=${NOVA_LXD_NLXC:-$NOVA_BIN_DIR/nlxc}
# shellcheck source=devstack/lib/nova-lxd disable=SC1091
. "$NOVA_LXD_PLUGIN_DIR/lib/nova-lxd"

# nova-compute must be nova-compute-lxd, which makes the driver loadable
# as nova.virt.lxd: wrap DevStack's run_process so that the n-cpu command
# names it; everything else DevStack does for n-cpu stays as it is.
nova_lxd_wrap_run_process() {
    declare -F _nova_lxd_devstack_run_process >/dev/null && return 0
    eval "_nova_lxd_devstack_$(declare -f run_process)"
    run_process() {
        local service=$1 command=$2
        shift 2
        if [ "$service" = n-cpu ]; then
            command=${command/\/nova-compute /\/nova-compute-lxd }
        fi
        _nova_lxd_devstack_run_process "$service" "$command" "$@"
    }
}

# n-lxd, this host's nlxd (as root), runs where n-cpu does.
nova_lxd_daemon_enabled() {
    is_service_enabled n-cpu && is_service_enabled n-lxd
}

# nlxd's HTTPS address: the address nova's [DEFAULT] my_ip has (the
# driver offers migrations on the daemon address that matches it).
nova_lxd_devstack_daemon_address() {
    local host=$NOVA_LXD_DAEMON_HOST
    if [ -z "$host" ]; then
        if [ "${SERVICE_IP_VERSION:-4}" = 6 ]; then
            host=$HOST_IPV6
        else
            host=$HOST_IP
        fi
    fi
    nova_lxd_daemon_address "$host" "$NOVA_LXD_DAEMON_PORT"
}

nova_lxd_image_id() {
    openstack image show "$1" -f value -c id 2>/dev/null
}

if [ "$1" = stack ]; then
    case "$2" in
        pre-install)
            if is_service_enabled n-cpu; then
                echo_summary "nova-lxd: system packages, subordinate ids"
                # shellcheck disable=SC2046
                install_package $(nova_lxd_packages)
                nova_lxd_ensure_subids "$NOVA_LXD_IDMAP_USER"
            fi
            ;;
        install)
            echo_summary "nova-lxd: installing $NOVA_LXD_DIR"
            setup_develop "$NOVA_LXD_DIR"
            ;;
        post-config)
            if is_service_enabled n-cpu; then
                echo_summary "nova-lxd: configuring nova-compute"
                nova_lxd_prepare_engine_root
                # DevStack copies NOVA_CONF to NOVA_CPU_CONF when it
                # starts n-cpu, which runs with NOVA_CPU_CONF alone.
                # shellcheck disable=SC2034  # read by lib/nova-lxd
                NOVA_LXD_HELPER_COMMAND=$(nova_lxd_helper_command \
                    "$NOVA_BIN_DIR" "$NOVA_CPU_CONF")
                nova_lxd_configure_nova "$NOVA_CONF"
                nova_lxd_write_sudoers "$STACK_USER" "$NOVA_BIN_DIR" \
                    "$NOVA_LXD_SUDOERS_FILE" "$NOVA_CPU_CONF"
                nova_lxd_wrap_run_process
                if nova_lxd_daemon_enabled; then
                    # nlxd serves the other hosts' daemons over HTTPS;
                    # nova-compute (STACK_USER) reaches it over the unix
                    # socket, owned by STACK_USER's primary group. It
                    # starts now, before n-cpu.
                    echo_summary "nova-lxd: starting nlxd (n-lxd)"
                    nova_lxd_configure_daemon "$NOVA_LXD_DAEMON_CONF" \
                        "$(nova_lxd_devstack_daemon_address)" \
                        "$(id -gn "$STACK_USER" 2>/dev/null \
                           || echo "$STACK_USER")"
                    iniset "$NOVA_CONF" lxc daemon_socket \
                        "$NOVA_LXD_DAEMON_SOCKET"
                    run_process n-lxd "$(nova_lxd_daemon_command \
                        "$NOVA_BIN_DIR" "$NOVA_LXD_DAEMON_CONF")" "" root
                fi
            fi
            ;;
        extra)
            if nova_lxd_daemon_enabled; then
                nova_lxd_wait_daemon "$NOVA_LXD_DAEMON_TIMEOUT"
                if [ -n "$NOVA_LXD_PEER_CERTS" ]; then
                    echo_summary "nova-lxd: trusting the other hosts' nlxd"
                    nova_lxd_trust_peers "$NOVA_LXD_PEER_CERTS"
                fi
            fi
            if is_service_enabled g-api; then
                echo_summary "nova-lxd: uploading the images to Glance"
                nova_lxd_upload_images "$PYTHON"
            fi
            ;;
        test-config)
            if is_service_enabled tempest; then
                echo_summary "nova-lxd: tempest feature flags"
                nova_lxd_configure_tempest "$TEMPEST_CONFIG"
                if is_service_enabled g-api; then
                    iniset "$TEMPEST_CONFIG" compute image_ref \
                        "$(nova_lxd_image_id busybox)"
                    iniset "$TEMPEST_CONFIG" compute image_ref_alt \
                        "$(nova_lxd_image_id "$NOVA_LXD_ALT_IMAGE")"
                fi
            fi
            # The last phase: how the other compute hosts trust this one.
            if nova_lxd_daemon_enabled; then
                nova_lxd_daemon_identity "$(hostname -s)" || true
            fi
            ;;
    esac
fi

if [ "$1" = unstack ]; then
    # Containers outlive their services, as guests do under libvirt
    # (nlxd holds no container state); clean removes them.
    if nova_lxd_daemon_enabled; then
        stop_process n-lxd
    fi
fi

if [ "$1" = clean ]; then
    nova_lxd_remove_containers "$PYTHON"
    nova_lxd_root rm -rf "$NOVA_LXD_ENGINE_ROOT" "$NOVA_LXD_IMAGE_CACHE"
    nova_lxd_root rm -f "$NOVA_LXD_SUDOERS_FILE" "$NOVA_LXD_DAEMON_CONF"
    nova_lxd_root rmdir --ignore-fail-on-non-empty \
        "$(dirname "$NOVA_LXD_DAEMON_CONF")" 2>/dev/null || true
fi
