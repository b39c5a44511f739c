"""The registry at the scale the seed sizes for: 10,000 features across 200 entity types.

    python bench/registry_scale.py [--views 200] [--features 50] [--rows 200] [--skip-build]

Generates a dbt project of its own (one entity type per view, each view `--features` declared columns
over a generated Parquet file of `--rows` rows), then measures, each in a fresh process where a user
would pay it so:

- `dbt parse` (cold), and `featurehouse build` (dbt build of every view, then the registry);
- the registry load in a new process: cold (nothing cached) and cached (the manifest parsed already);
- `featurehouse features list` and `features show VIEW` (CLI, end to end);
- `featurehouse check` (the schema gate: dbt compile + describe every view);
- a serving worker's start: loading the registry snapshot `featurehouse serve` hands its workers, and
  building the ASGI app (in a fresh process, as each worker does);
- planning one request (`plan_request`, 10 features of one view) against this registry and against a
  registry of 2 views: it must not grow with the number of features;
- a training set of 500 features from 50 views (1,000 spine rows), and a `sync` of every view.

Prints each figure beside its budget (docs/capacity.md) and the peak memory of the in-process steps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGETS = {"registry_cached_s": 1.0, "features_list_s": 5.0, "plan_ratio": 2.0, "serve_worker_start_s": 5.0}


def write_project(root: Path, views: int, features: int, rows: int) -> Path:
    project = root / "scale"
    (project / "models").mkdir(parents=True)
    (project / "data").mkdir()
    entities = "".join(f"      e{v}: [e{v}_id]\n" for v in range(views))
    (project / "dbt_project.yml").write_text(
        "name: scale\nversion: '1.0'\nconfig-version: 2\nprofile: scale\n"
        f"vars:\n  featurehouse:\n    entities:\n{entities}"
        "models:\n  scale:\n    +materialized: table\n")
    (project / "profiles.yml").write_text(
        "scale:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: scale.duckdb\n      threads: 2\n")
    (project / "packages.yml").write_text(f"packages:\n  - local: {ROOT}\n")
    start = datetime(2026, 1, 1)
    yml = ["version: 2", "sources:", "  - name: raw", "    tables:"]
    models = ["version: 2", "models:"]
    for v in range(views):
        cols = {f"e{v}_id": pa.array([i % 50 for i in range(rows)], pa.int64()),
                "event_time": pa.array([start + timedelta(minutes=i) for i in range(rows)], pa.timestamp("us"))}
        for f in range(features):
            cols[f"f{f}"] = pa.array([float(i * f % 97) for i in range(rows)], pa.float64())
        pq.write_table(pa.table(cols), project / "data" / f"v{v}.parquet")
        yml += [f"      - name: v{v}_raw", f"        meta: {{external_location: 'data/v{v}.parquet'}}"]
        select = ", ".join(f"f{f}" for f in range(features))
        (project / "models" / f"v{v}.sql").write_text(
            f"{{{{ config(meta={{'featurehouse': {{'entity': 'e{v}', 'event_time': 'event_time', 'ttl': '30d', "
            f"'freshness_slo': '1d', 'owner': 'team{v % 9}'}}}}) }}}}\n"
            f"select e{v}_id, event_time, {select} from {{{{ source('raw', 'v{v}_raw') }}}}\n")
        models += [f"  - name: v{v}", "    columns:", f"      - {{name: e{v}_id, data_type: bigint}}",
                   "      - {name: event_time, data_type: timestamp}"]
        models += [f"      - {{name: f{f}, data_type: double}}" for f in range(features)]
    (project / "models" / "sources.yml").write_text("\n".join(yml) + "\n")
    (project / "models" / "views.yml").write_text("\n".join(models) + "\n")
    return project


def fresh(code: str, project: Path) -> float:
    """Seconds a new Python process takes to run `code` (with `project` bound), start-up excluded."""
    script = ("import sys, time; sys.path.insert(0, %r)\nfrom pathlib import Path\nproject = Path(%r)\n"
              "t = time.perf_counter()\n%s\nprint('TOOK', time.perf_counter() - t)\n") % (str(ROOT), str(project), code)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=project)
    if out.returncode != 0:
        sys.exit(f"failed: {code}\n{out.stderr[-3000:]}")
    return float(next(line for line in out.stdout.splitlines() if line.startswith("TOOK")).split()[1])


def cli(project: Path, *args: str) -> float:
    t = time.perf_counter()
    out = subprocess.run([str(Path(sys.executable).with_name("featurehouse")), "--project-dir", str(project), *args],
                         capture_output=True, text=True)
    took = time.perf_counter() - t
    if out.returncode not in (0, 1):
        sys.exit(f"featurehouse {' '.join(args)} exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took


def plan_us(registry, names: list[str], entity: str, repeat: int = 2000) -> float:
    from featurehouse.serving.vectors import plan_request

    t = time.perf_counter()
    for _ in range(repeat):
        plan_request(registry, entity, names, active=registry.active)
    return (time.perf_counter() - t) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    os.environ.pop("DBT_PROFILES_DIR", None)
    work = Path(tempfile.mkdtemp(prefix="fh_scale_"))
    project = write_project(work, args.views, args.features, args.rows)
    total = args.views * args.features
    print(f"project: {args.views} views x {args.features} features = {total:,} features, {args.views} entity "
          f"types, in {project}")
    r: dict[str, float] = {}
    r["dbt_parse_cold_s"] = fresh("from featurehouse.project import DbtProject\nDbtProject(project).manifest()",
                                  project)
    r["build_s"] = cli(project, "build")
    r["registry_cold_s"] = fresh(
        "import shutil\nfrom featurehouse import FeatureStore\n"
        "(project / 'target' / 'featurehouse_relations.json').unlink(missing_ok=True)\n"
        "FeatureStore(project).load_registry(refresh=True)", project)
    r["registry_cached_s"] = fresh("from featurehouse import FeatureStore\nFeatureStore(project).registry", project)
    r["features_list_s"] = cli(project, "features", "list")
    r["features_show_s"] = cli(project, "features", "show", "v7")
    r["check_s"] = cli(project, "check")

    from featurehouse import FeatureStore
    from featurehouse.registry.manifest import parse_entities
    from featurehouse.registry.model import Registry

    store = FeatureStore(project)
    registry = store.registry
    from featurehouse.registry.snapshot import save_snapshot

    snapshot = save_snapshot(registry, project / ".featurehouse" / "serving" / "registry-bench.pickle")
    r["serve_worker_start_s"] = fresh(
        "from featurehouse.registry.snapshot import load_snapshot\n"
        "from featurehouse.serving.app import ServeConfig, create_app\n"
        f"create_app(load_snapshot({str(snapshot)!r}), ServeConfig(redis_url='redis://127.0.0.1:1/0', auth='none'))",
        project)
    names = [f"v7.f{f}" for f in range(min(10, args.features))]
    big = plan_us(registry, names, "e7")
    small = Registry(entities=parse_entities({"e7": ["e7_id"], "e8": ["e8_id"]}))
    for v in ("v7", "v8"):
        small.add(registry.view(v))
    little = plan_us(small, names, "e7")
    r["plan_us"], r["plan_us_2_views"], r["plan_ratio"] = round(big, 1), round(little, 1), round(big / little, 2)

    per_view = max(1, 500 // 50)
    features = [f"v{v}.f{f}" for v in range(0, min(args.views, 50)) for f in range(min(per_view, args.features))]
    spine = pa.table({**{f"e{v}_id": pa.array([i % 60 for i in range(1000)], pa.int64()) for v in range(50)},
                      "ts": pa.array([datetime(2026, 1, 1, 3) + timedelta(seconds=7 * i) for i in range(1000)],
                                     pa.timestamp("us"))})
    t = time.perf_counter()
    ts = store.training_set_arrow(spine, features, timestamp="ts")
    r["training_set_500_features_s"] = time.perf_counter() - t
    assert ts.num_rows == 1000 and ts.num_columns == 51 + len(features)
    store.close()
    r["sync_all_s"] = cli(project, "sync")
    r["sync_noop_s"] = cli(project, "sync")
    r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r = {k: round(v, 2) for k, v in r.items()}
    print(json.dumps({"views": args.views, "features": total, **r}))
    for key, value in r.items():
        budget = BUDGETS.get(key)
        print(f"  {key:32s} {value:>10}" + (f"   budget {budget}: {'ok' if value <= budget else 'OVER'}"
                                            if budget is not None else ""))


if __name__ == "__main__":
    main()
