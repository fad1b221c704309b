#!/usr/bin/env bash
# Run the whole test suite N times in a row (default 5) while CPU-bound processes keep
# the cores busy (default 2: HOGS=N to change), printing one result line per run.
# A suite that passes here does not depend on the machine's speed.
#
#   bash tests/stress.sh [N] [pytest arguments...]
#
# Exit status: 0 when every run passed, 1 otherwise.  The output of each run is kept in a
# temporary folder (named at the end); a failed run also prints its FAILED/ERROR lines.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
shift $(($# > 0 ? 1 : 0))
case $runs in
    '' | *[!0-9]*) echo "usage: bash tests/stress.sh [N] [pytest arguments...]" >&2; exit 2 ;;
esac

logs=$(mktemp -d "${TMPDIR:-/tmp}/rdebug-stress.XXXXXX")
hogs=()
stop_hogs() {
    if [ ${#hogs[@]} -gt 0 ]; then
        kill "${hogs[@]}" 2>/dev/null
        wait "${hogs[@]}" 2>/dev/null
    fi
    hogs=()
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 "${HOGS:-2}"); do
    sh -c 'while :; do :; done' &
    hogs+=($!)
done
echo "stress: $runs runs of the suite beside ${#hogs[@]} CPU hogs on $(nproc) cores"

failed=0
for run in $(seq 1 "$runs"); do
    log="$logs/run$run.txt"
    python3 -m pytest -q -p no:cacheprovider "$@" >"$log" 2>&1
    status=$?
    echo "run $run/$runs: $(tail -n 1 "$log") (exit $status)"
    if [ "$status" -ne 0 ]; then
        failed=1
        grep -E '^(FAILED|ERROR) ' "$log"
    fi
done
echo "stress: logs in $logs"
exit $failed
