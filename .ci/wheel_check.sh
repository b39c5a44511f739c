#!/usr/bin/env bash
# The wheel as a user gets it: built out of tree, installed into a fresh venv (not editable, no checkout in
# sight), then `featurehouse demo` from an empty directory and `featurehouse init` on a new dbt project.
# The fresh venv takes featurehouse's dependencies from an existing environment through a .pth line (offline,
# seconds) instead of downloading them; only the wheel's own files come from the build.
#   usage: .ci/wheel_check.sh [PYTHON]   (PYTHON: an interpreter that has featurehouse's dependencies; default python3)
#   WHEEL=path/to/featurehouse-*.whl skips the build and checks that wheel (tests/test_packaging.py does).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASE_PY="${1:-python3}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
unset FEATUREHOUSE_REDIS_URL FEATUREHOUSE_PROJECT_DIR FEATUREHOUSE_TARGET DBT_PROFILES_DIR

# 1. build from a copy: setuptools writes build/ and *.egg-info next to the sources, never into the checkout
if [ -z "${WHEEL:-}" ]; then
  mkdir -p "$TMP/src" "$TMP/dist"
  tar -C "$ROOT" --exclude=./.git --exclude='*.egg-info' --exclude=./build --exclude=./dist --exclude=./.ci-venv \
      --exclude=./.venv --exclude=./venv --exclude=.featurehouse --exclude=dbt_packages --exclude=target --exclude=logs \
      --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis --exclude=.ruff_cache -cf - . | tar -C "$TMP/src" -xf -
  "$BASE_PY" -m pip wheel "$TMP/src" --no-deps -q -w "$TMP/dist"
  WHEEL="$(ls "$TMP"/dist/featurehouse-*.whl)"
  echo "built $(basename "$WHEEL")"
fi

# 2. a fresh venv with the wheel; dependencies through a .pth on the base environment's site-packages
"$BASE_PY" -m venv "$TMP/venv"
VPY="$TMP/venv/bin/python"
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$BASE_PY" -c 'import sysconfig; p = sysconfig.get_paths(); print(p["purelib"]); print(p["platlib"])' > "$SITE/zz_base_env.pth"
"$VPY" -m pip install -q --no-deps --no-index "$WHEEL"
cd "$TMP"  # not the checkout: `python -` puts the current directory first on sys.path
"$VPY" - "$TMP" <<'EOF'
import sys
from pathlib import Path

import featurehouse
from featurehouse import packaging

tmp = Path(sys.argv[1]).resolve()
where = Path(featurehouse.__file__).resolve()
assert where.is_relative_to(tmp / "venv"), f"featurehouse imported from {where}, not the wheel"
assert packaging.checkout_root() is None
assert packaging.dbt_package_dir().is_relative_to(tmp / "venv"), packaging.dbt_package_dir()
assert packaging.repository_url() == "https://github.com/featurehouse/featurehouse", packaging.repository_url()
print(f"featurehouse {featurehouse.__version__} from {where.parent}")
EOF

# 3. the demo from an empty directory: it copies the bundled example to ./featurehouse_demo and says so
mkdir "$TMP/empty"
cd "$TMP/empty"
"$TMP/venv/bin/featurehouse" demo --no-serve --scale 0.05 | tee "$TMP/demo.out"
grep -q "example project: $TMP/empty/featurehouse_demo (copied from the featurehouse package" "$TMP/demo.out"
test -f featurehouse_demo/.featurehouse/training/fraud_model.parquet
case "$(readlink -f featurehouse_demo/dbt_packages/featurehouse)" in
  "$TMP"/venv/*) ;;
  *) echo "dbt_packages/featurehouse is not the wheel's dbt package"; exit 1 ;;
esac
"$TMP/venv/bin/featurehouse" --project-dir featurehouse_demo features list > /dev/null

# 4. init on a new dbt project: the git entry at this version's tag; --local the wheel's own package
mkdir "$TMP/shop"
printf 'name: shop\nprofile: shop\nvars: {start_date: "2018-01-01"}  # ours\n' > "$TMP/shop/dbt_project.yml"
"$TMP/venv/bin/featurehouse" --project-dir "$TMP/shop" init
VERSION="$("$VPY" -c 'import featurehouse; print(featurehouse.__version__)')"
grep -q 'git: "https://github.com/featurehouse/featurehouse.git"' "$TMP/shop/packages.yml"
grep -q "revision: v$VERSION" "$TMP/shop/packages.yml"
grep -q '^vars: {start_date: "2018-01-01", featurehouse: {entities: {user: \[user_id\]}}}  # ours$' "$TMP/shop/dbt_project.yml"
"$TMP/venv/bin/featurehouse" --project-dir "$TMP/shop" init --local
grep -q "local: \"$TMP/venv/" "$TMP/shop/packages.yml"
echo "wheel check passed"
