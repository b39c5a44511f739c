#!/usr/bin/env bash
# featurehouse's scheduled job, for cron: build -> sync -> parity -> freshness.
#
#   build      `dbt build` of the feature views (and their tests), then the registry is validated
#   sync       the warehouse's latest values into the online store (incremental)
#   parity     online values equal the warehouse's latest rows (a sample of entities per view)
#   freshness  every view within its freshness SLO
#
# Exit code: what to alert on (docs/guardrails.md, "Exit codes, for cron and CI"):
#   0  every step passed
#   1  a guard fired (parity or freshness): its table above says which view, and why
#   2  a usage error: the project, profile or an option is wrong, or `dbt build` failed; a person fixes it
#   3  the warehouse or the online store cannot be had now (or a previous run still holds the lock):
#      retried here first; alert if it persists, rather than treating it as a breach
#   4  featurehouse crashed (a bug: its traceback is above); report it
# When more than one step fails, the exit code is the most urgent: 4, 2, then 1, then 3.
#
# Settings, from the environment (cron passes few: set them in the crontab, see ./crontab):
#   FEATUREHOUSE_PROJECT_DIR    the dbt project (default: the current directory)
#   FEATUREHOUSE_TARGET         the profile target (default: the profile's own `target:`)
#   DBT_PROFILES_DIR            where profiles.yml is (default: the project if it has one, else ~/.dbt)
#   FEATUREHOUSE_BIN            the featurehouse command (default: `featurehouse` on PATH)
#   FEATUREHOUSE_LOCK_FILE      the non-overlap lock (default: <project>/.featurehouse/pipeline.lock)
#   FEATUREHOUSE_PARITY_SAMPLE  entities compared per view (default: 1000)
#   FEATUREHOUSE_RETRIES        extra tries of a step that exited 3 (default: 2)
#   FEATUREHOUSE_RETRY_DELAY_S  seconds between those tries (default: 30)
set -uo pipefail  # not -e: every step's exit code is read and reported below

project_dir="$(cd "${FEATUREHOUSE_PROJECT_DIR:-.}" && pwd)" || exit 2
featurehouse="${FEATUREHOUSE_BIN:-featurehouse}"
lock_file="${FEATUREHOUSE_LOCK_FILE:-$project_dir/.featurehouse/pipeline.lock}"
parity_sample="${FEATUREHOUSE_PARITY_SAMPLE:-1000}"
retries="${FEATUREHOUSE_RETRIES:-2}"
retry_delay_s="${FEATUREHOUSE_RETRY_DELAY_S:-30}"

say() { echo "[$(date -u +%Y-%m-%dT%H:%M:%SZ)] featurehouse pipeline: $*"; }

meaning() {
    case "$1" in
        0) echo "ok" ;;
        1) echo "a guard fired" ;;
        2) echo "usage error (or dbt failed)" ;;
        3) echo "a store cannot be had now" ;;
        4) echo "featurehouse crashed: a bug, see the traceback above" ;;
        *) echo "unexpected exit code" ;;
    esac
}

# Global options, spelled out so the log shows what ran where.
options=(--project-dir "$project_dir")
[ -n "${FEATUREHOUSE_TARGET:-}" ] && options+=(--target "$FEATUREHOUSE_TARGET")
[ -n "${DBT_PROFILES_DIR:-}" ] && options+=(--profiles-dir "$DBT_PROFILES_DIR")

# One run at a time: a run still going when cron starts the next one (a slow build, a store that is
# waited for) makes the new one exit 3 at once instead of racing it for the DuckDB file and the store.
mkdir -p "$(dirname "$lock_file")"
exec 9>"$lock_file"
if ! flock --nonblock 9; then
    say "another run still holds $lock_file: not starting (exit 3)" >&2
    exit 3
fi

# run_step NAME ARGS...: run `featurehouse ARGS`, retrying only exit 3 (the store may be back soon;
# a guard that fired or a usage error will say the same again). Sets `rc`.
run_step() {
    local name="$1" attempt=0
    shift
    while :; do
        say "$name: featurehouse $*"
        # 9>&-: the command and anything it starts (dbt, an embedded Redis) must not inherit the lock
        "$featurehouse" "${options[@]}" "$@" 9>&-
        rc=$?
        if [ "$rc" -ne 3 ] || [ "$attempt" -ge "$retries" ]; then break; fi
        attempt=$((attempt + 1))
        say "$name: exit 3 ($(meaning 3)): try $((attempt + 1)) of $((retries + 1)) in ${retry_delay_s}s" >&2
        sleep "$retry_delay_s"
    done
    say "$name: exit $rc ($(meaning "$rc"))"
}

failed=()  # "step (exit N: meaning)" for each step that did not pass
worst=0    # the most urgent exit code seen: 2, then 1, then 3

record() {  # record NAME: note a failed step and keep the most urgent code
    failed+=("$1 (exit $rc: $(meaning "$rc"))")
    case "$rc:$worst" in
        4:*) worst=4 ;;
        2:[013]) worst=2 ;;
        1:0 | 1:3) worst=1 ;;
        3:0) worst=3 ;;
        *:0) worst=$rc ;;  # a crash: no better code to give
    esac
}

finish() {
    if [ "${#failed[@]}" -eq 0 ]; then
        say "ok: build, sync, parity, freshness"
        exit 0
    fi
    local list
    printf -v list '%s, ' "${failed[@]}"
    say "FAILED: ${list%, }" >&2
    exit "$worst"
}

# build and sync feed what the guards judge: when either fails, the guards would judge stale state.
run_step build build
[ "$rc" -eq 0 ] || { record build; finish; }
run_step sync sync
[ "$rc" -eq 0 ] || { record sync; finish; }

# Both guards run even when the first fires: a parity breach must not hide a stale feed.
run_step parity parity --sample "$parity_sample"
[ "$rc" -eq 0 ] || record parity
run_step freshness freshness
[ "$rc" -eq 0 ] || record freshness
finish
