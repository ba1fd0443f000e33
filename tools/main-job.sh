#!/usr/bin/env bash
# The project's main job on a fresh Debian 12/13 machine, as root: set
# everything up, then run a busybox container through the engine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh"
exec "$here/../.venv/bin/python" "$here/engine_demo.py" "$@"
