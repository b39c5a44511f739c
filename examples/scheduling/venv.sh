#!/usr/bin/env bash
# Create (idempotently) a virtualenv for one scheduler, holding that scheduler, its requirements file
# beside this script, and featurehouse from this checkout (editable), then print its python path.
# One venv per scheduler: Airflow and Dagster each pin many packages, and neither belongs in the
# venv featurehouse itself is developed and tested in.
#
#   bash examples/scheduling/venv.sh airflow     # prints e.g. ~/.cache/featurehouse-sched/airflow-venv/bin/python
#   bash examples/scheduling/venv.sh dagster
#   FEATUREHOUSE_SCHED_VENV=/some/dir bash examples/scheduling/venv.sh airflow   # another place
#
# The tests find the venvs through FEATUREHOUSE_AIRFLOW_PYTHON / FEATUREHOUSE_DAGSTER_PYTHON:
#   export FEATUREHOUSE_AIRFLOW_PYTHON="$(bash examples/scheduling/venv.sh airflow)"
set -euo pipefail

case "${1:-}" in
    airflow) module=airflow; dist=apache-airflow ;;
    dagster) module=dagster_dbt; dist=dagster-dbt ;;
    *) echo "usage: $0 airflow|dagster" >&2; exit 2 ;;
esac
scheduler="$1"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
requirements="$here/requirements-$scheduler.txt"
venv="${FEATUREHOUSE_SCHED_VENV:-$HOME/.cache/featurehouse-sched/$scheduler-venv}"
PYTHON_BIN="${PYTHON_BIN:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

# What the venv was made from: a changed requirements file or another checkout means install again.
stamp_file="$venv/.featurehouse-sched-stamp"
stamp="$(cat "$requirements" "$repo/pyproject.toml" | sha256sum | cut -d' ' -f1) $repo"

check() {
    [ -x "$venv/bin/python" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] || return 1
    # cheap: package metadata and module lookup only (importing airflow or dagster takes seconds)
    "$venv/bin/python" - "$module" "$repo" <<'PY' >/dev/null 2>&1
import sys
from importlib.util import find_spec
from pathlib import Path
module, repo = sys.argv[1], Path(sys.argv[2])
if find_spec(module) is None or find_spec("dbt") is None:
    sys.exit(1)
featurehouse = find_spec("featurehouse")  # editable: this checkout's package, not a copy
if featurehouse is None or Path(featurehouse.origin).resolve().parent != repo / "featurehouse":
    sys.exit(1)
PY
}

_pip() {  # pip, minus the "Location ... is ignored" noise of this machine's pip config
    local rc=0
    "$venv/bin/python" -m pip "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) >&2 || rc=$?
    return "$rc"
}

describe() {
    "$venv/bin/python" -c "from importlib.metadata import version as v; print(f\"$dist {v('$dist')}, dbt-core {v('dbt-core')}\")"
}

if check; then
    echo "$scheduler venv OK: $venv ($(describe))" >&2
    echo "$venv/bin/python"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
[ -x "$venv/bin/python" ] || "$PYTHON_BIN" -m venv "$venv"
_pip install --quiet --upgrade pip
# One resolve for both: the scheduler's pins and featurehouse's (dbt-core 1.11) are solved together.
_pip install --quiet -r "$requirements" -e "$repo"
echo "$stamp" > "$stamp_file"

if ! check; then
    echo "$scheduler venv at $venv failed validation (from $requirements and $repo)" >&2
    exit 1
fi
echo "$scheduler venv ready: $venv ($(describe))" >&2
echo "$venv/bin/python"
