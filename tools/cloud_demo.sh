#!/usr/bin/env bash
# Boot a container server on the one-host cloud (tools/cloud.sh up) with
# the openstack client, then show it: `openstack server list`, its
# console log, and how to reach the container on the host.
#
#   tools/cloud_demo.sh [IMAGE [FLAVOR [NAME]]]   (busybox c1.tiny demo)
set -euo pipefail

CLOUD=${NOVA_LXD_CLOUD_DIR:-/var/lib/nova-lxd-cloud}
IMAGE=${1:-busybox}
FLAVOR=${2:-c1.tiny}
NAME=${3:-demo}

# shellcheck source=/dev/null
. "$CLOUD/openrc"

say() { printf '\n== %s\n' "$*"; }

if openstack server show "$NAME" -f value -c id >/dev/null 2>&1; then
    say "deleting the previous $NAME"
    openstack server delete --wait "$NAME"
fi

say "openstack server create --image $IMAGE --flavor $FLAVOR --nic none" \
    "--wait $NAME   (compute API $OS_COMPUTE_API_VERSION)"
t0=$(date +%s.%N)
openstack server create --image "$IMAGE" --flavor "$FLAVOR" --nic none \
    --wait "$NAME" -f value -c id -c status
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" \
    'BEGIN { printf "ACTIVE after %.1f s (client included)\n", b - a }'

say "openstack server list"
openstack server list

# Give init a moment to write its first lines.
sleep 1
say "openstack console log show $NAME"
openstack console log show "$NAME"

container=$(openstack server show "$NAME" -f value \
    -c OS-EXT-SRV-ATTR:instance_name)
lxcpath=$CLOUD/lxc/containers
say "the container on this host: $container"
lxc-info -P "$lxcpath" -n "$container"
printf '\n$ lxc-attach -P %s -n %s -- cat /etc/hostname\n' \
    "$lxcpath" "$container"
lxc-attach -P "$lxcpath" -n "$container" -- cat /etc/hostname
cat <<EOF

Reach it (as root on this host):
    lxc-attach -P $lxcpath -n $container -- /bin/sh
Manage it (credentials, PATH):
    . $CLOUD/openrc
    openstack server stop|start|reboot|pause|suspend|delete $NAME
Services and logs: tools/cloud.sh status; tools/cloud.sh logs nova-compute
(no network: servers boot with --nic none until Neutron comes)
EOF
