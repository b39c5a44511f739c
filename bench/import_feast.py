"""How long `featurehouse import-feast` takes on a large Feast repository, beside Feast reading the same one.

    python bench/import_feast.py [--views 200] [--features 20] [--entities 50] [--skip-feast]

Generates a Feast repository (definitions split over modules that import each other, one Parquet file
per view, feature services over every tenth view), then times, each in a fresh process:

- `featurehouse import-feast REPO` into a new dbt project (read the Python statically, translate, write);
- the first `featurehouse features list` on the result (dbt deps, dbt parse and the registry load: what
  the first command pays once; cached after);
- Feast's `feast plan` on the same repository (imports the modules and validates them against the
  Parquet files: the step a Feast user runs to check definitions), from Feast's own venv
  (bench/feast_env.sh).

Prints the timings, the ratio, and checks that every view was translated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent


def write_repo(repo: Path, views: int, features: int, entities: int) -> None:
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        "project: bench_import\nregistry: data/registry.db\nprovider: local\n"
        "offline_store:\n    type: duckdb\nonline_store:\n    type: sqlite\n    path: data/online.db\n"
        "entity_key_serialization_version: 3\n")
    (repo / "entities.py").write_text(
        "from feast import Entity, ValueType\n\n"
        + "".join(f"e{i} = Entity(name='e{i}', join_keys=['e{i}_id'], value_type=ValueType.INT64)\n"
                  for i in range(entities)))
    lines = ["from datetime import timedelta", "from pathlib import Path", "",
             "from feast import FeatureView, Field, FileSource", "from feast.types import Float64, Int64", "",
             "from entities import *  # noqa: F403", "", "DATA = Path(__file__).parent / 'data'", ""]
    start = datetime(2026, 1, 1)
    for v in range(views):
        e = v % entities
        cols = {f"e{e}_id": pa.array([1, 2, 3], pa.int64()),
                "ts": pa.array([start + timedelta(hours=h) for h in range(3)], pa.timestamp("us"))}
        for f in range(features):
            cols[f"f{f}"] = pa.array([float(f), f + 0.5, None] if f % 2 else [f, f + 1, None],
                                     pa.float64() if f % 2 else pa.int64())
        pq.write_table(pa.table(cols), repo / "data" / f"v{v}.parquet")
        schema = ", ".join(f"Field(name='f{f}', dtype={'Float64' if f % 2 else 'Int64'})" for f in range(features))
        lines += [f"v{v} = FeatureView(name='v{v}', entities=[e{e}], ttl=timedelta(days={1 + v % 30}),",
                  f"    schema=[{schema}],",
                  f"    source=FileSource(name='s{v}', path=str(DATA / 'v{v}.parquet'), timestamp_field='ts'),",
                  f"    tags={{'team': 't{v % 7}'}}, owner='team{v % 7}@example.com')", ""]
    (repo / "features.py").write_text("\n".join(lines))
    services = ["from feast import FeatureService", "", "from features import *  # noqa: F403", ""]
    services += [f"svc{v} = FeatureService(name='svc{v}', features=[v{v}, v{(v + 1) % views}[['f0', 'f1']]])"
                 for v in range(0, views, 10)]
    (repo / "services.py").write_text("\n".join(services) + "\n")


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--entities", type=int, default=50)
    parser.add_argument("--skip-feast", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fh_bench_import_"))
    repo, project = work / "feast_repo", work / "analytics"
    write_repo(repo, args.views, args.features, args.entities)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    fh = timed([str(bin_dir / "featurehouse"), "--project-dir", str(project), "import-feast", str(repo), "--local"],
               work, env)
    models = len(list((project / "models" / "feast").glob("*.sql")))
    if models != args.views:
        sys.exit(f"translated {models} of {args.views} views")
    parse = timed([str(bin_dir / "featurehouse"), "features", "list"], project, env)
    result = {"views": args.views, "features": args.views * args.features, "entities": args.entities,
              "featurehouse_import_s": round(fh, 2), "first_features_list_s": round(parse, 2)}
    if not args.skip_feast:
        feast_py = subprocess.run(["bash", str(ROOT / "bench" / "feast_env.sh")], capture_output=True, text=True,
                                  check=True).stdout.strip()
        feast = timed([str(Path(feast_py).parent / "feast"), "plan"], repo)
        result.update(feast_plan_s=round(feast, 2), ratio_feast_over_featurehouse=round(feast / fh, 2))
    print(json.dumps(result))
    print(f"import-feast: {fh:.2f} s for {args.views} views / {args.views * args.features:,} features "
          f"(then the first `features list`, dbt deps and parse included: {parse:.2f} s)"
          + (f"; feast plan on the same repository: {result['feast_plan_s']:.2f} s "
             f"({result['ratio_feast_over_featurehouse']:.2f}x the import)" if not args.skip_feast else ""))


if __name__ == "__main__":
    main()
