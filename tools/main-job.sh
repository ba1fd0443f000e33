#!/usr/bin/env bash
# The project's main job on a fresh Debian 12/13 machine, as root: set
# everything up, start the one-host OpenStack (tools/cloud.sh) and boot a
# container server in it with the openstack client (tools/cloud_demo.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh"
bash "$here/cloud.sh" up
exec bash "$here/cloud_demo.sh" "$@"
