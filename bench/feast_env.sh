#!/usr/bin/env bash
# Create (idempotently) a separate virtualenv holding Feast + its DuckDB offline
# store, used only as the *reference* half of bench/training_set.py.
# Never install Feast into the project's own venv.
#
#   bash bench/feast_env.sh            # creates/validates the venv, prints its python path
#   FEAST_VENV=/some/dir bash bench/feast_env.sh
set -euo pipefail

FEAST_VENV="${FEAST_VENV:-$HOME/.cache/featurehouse-bench/feast-venv}"
FEAST_SPEC="${FEAST_SPEC:-feast[duckdb,redis]==0.67.*}"
PYTHON_BIN="${PYTHON_BIN:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

want_major_minor="$(echo "$FEAST_SPEC" | sed -n 's/.*==\([0-9]*\.[0-9]*\).*/\1/p')"

check() {
    [ -x "$FEAST_VENV/bin/python" ] || return 1
    # cheap: package metadata only (importing feast takes ~10 s)
    "$FEAST_VENV/bin/python" - "$want_major_minor" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
from importlib.util import find_spec
want = sys.argv[1]
v = version("feast")
for mod in ("feast", "duckdb", "ibis", "dask", "redis"):  # duckdb store needs ibis-framework[duckdb]; redis: online store
    if find_spec(mod) is None:
        sys.exit(1)
if want and not v.startswith(want + "."):
    sys.exit(1)
PY
}

_pip() {  # pip, minus the "Location ... is ignored" noise of this machine's pip config
    local rc=0
    "$FEAST_VENV/bin/python" -m pip "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) >&2 || rc=$?
    return "$rc"
}

feast_version() {
    "$FEAST_VENV/bin/python" -c 'from importlib.metadata import version; print(version("feast"))'
}

if check; then
    echo "feast venv OK: $FEAST_VENV ($(feast_version))" >&2
    echo "$FEAST_VENV/bin/python"
    exit 0
fi

mkdir -p "$(dirname "$FEAST_VENV")"
if [ ! -x "$FEAST_VENV/bin/python" ]; then
    "$PYTHON_BIN" -m venv "$FEAST_VENV"
fi
_pip install --quiet --upgrade pip
_pip install --quiet "$FEAST_SPEC"

if ! check; then
    echo "feast venv at $FEAST_VENV failed validation (wanted $FEAST_SPEC)." >&2
    echo "If 0.67 cannot install, retry with e.g. FEAST_SPEC='feast[duckdb]==0.66.*'" >&2
    exit 1
fi
echo "feast venv ready: $FEAST_VENV ($(feast_version))" >&2
echo "$FEAST_VENV/bin/python"
