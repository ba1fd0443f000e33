#!/usr/bin/env bash
# The project's one test command (CI runs it through .ci/run, as root).
#
# Sets the machine up (tools/setup.sh), then runs tox's `ci` environment:
# lint, genconfig-check, unit, functional and e2e (the one-host cloud,
# tools/cloud.sh, started by the tests) in that order in one environment,
# stopping at the first that fails, and exits with tox's status.
# Arguments are passed to tox, e.g. `tools/run-tests.sh -e unit -- -k x`.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

bash tools/setup.sh

if [ "$#" -eq 0 ]; then
    set -- -e ci
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
.venv/bin/tox run --fail-fast "$@" 2>&1 | tee "$log" || status=$?

# One closing line over every pytest run above (each env prints its own).
awk '
    /^=+ .* in [0-9.]+s.* =+$/ || /^=+ no tests ran in / {
        for (i = 2; i <= NF; i++) {
            n = $(i - 1) + 0
            if ($i ~ /^passed/) passed += n
            else if ($i ~ /^(failed|errors?)/) failed += n
            else if ($i ~ /^skipped/) skipped += n
        }
    }
    END {
        printf "tests: %d passed, %d failed, %d skipped\n", \
            passed, failed, skipped
    }' "$log"

exit "$status"
