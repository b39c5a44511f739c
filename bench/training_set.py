"""Benchmark: featurehouse training sets against hand-written DuckDB SQL and Feast, on the same data.

Spine of 1,000,000 rows x two views (~5,000,000 and ~300,000 rows, 100,000 users, TTLs 7 and 365
days), all read from the same Parquet files. Every variant runs in its own process (so peak memory
is its own), at least 3 times; medians are compared as ratios measured in this one run.

    python bench/training_set.py                      # everything (Feast's file store takes ~11 min)
    python bench/training_set.py --skip-feast-file    # without Feast's file store
    python bench/training_set.py --small              # 100k spine rows, for a quick look

Variants:
  featurehouse            FeatureStore.training_set from the spine Parquet, spine order kept
  featurehouse_unordered  the same with keep_order=False (the hand-written queries do not sort)
  handwritten_asof        reference_sql.asof_sql: arg_max dedup + two ASOF LEFT JOINs, TTL as CASE
  handwritten_window      reference_sql.window_sql: band join + QUALIFY row_number()
  feast_duckdb            Feast 0.67 get_historical_features, DuckDB offline store (own venv)
  feast_file              Feast 0.67 get_historical_features, default file store (own venv)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_data  # noqa: E402
import reference_sql  # noqa: E402

SMALL = dict(spine_rows=100_000, big_rows=500_000, small_rows=30_000, entities=10_000)
FEATURES = [f"big_view.{c}" for c in reference_sql.BIG_FEATURES] + [f"small_view.{c}" for c in reference_sql.SMALL_FEATURES]


# -- one variant, in a process of its own ---------------------------------------------------------

def featurehouse_store(data: Path):
    """A store over the benchmark's Parquet files: each view a DuckDB view on its file."""
    from featurehouse import Entity, Feature, FeatureStore, FeatureView, Registry, Relation
    from featurehouse.offline.warehouse import DuckDBWarehouse

    wh = DuckDBWarehouse(":memory:")
    wh.execute("SET enable_progress_bar = false")
    user = Entity("user", ("user_id",))
    registry = Registry(entities={"user": user})
    for name, cols, ttl in (("big_view", reference_sql.BIG_FEATURES, reference_sql.BIG_TTL_DAYS),
                            ("small_view", reference_sql.SMALL_FEATURES, reference_sql.SMALL_TTL_DAYS)):
        path = str(data / f"{name}.parquet").replace("'", "''")
        wh.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        types = wh.describe(Relation(None, None, name))
        registry.add(FeatureView(name, 1, user, Relation(None, None, name), "event_time",
                                 tuple(Feature(name, c, types[c], 1) for c in cols),
                                 created_at="created_at", ttl=timedelta(days=ttl)))
    return FeatureStore.from_registry(registry, wh)


def run_variant(variant: str, data: Path, repeat: int) -> dict:
    spine = str(data / "spine.parquet")
    times, rows = [], None
    if variant.startswith("featurehouse"):
        store = featurehouse_store(data)
        keep = variant == "featurehouse"
        for _ in range(repeat):
            t = time.perf_counter()
            result = store.build_training_set(spine, FEATURES, timestamp="label_time", keep_order=keep, record=False)
            times.append(time.perf_counter() - t)
            rows = result.rows
    else:
        import duckdb

        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        fn = reference_sql.handwritten_asof if variant == "handwritten_asof" else reference_sql.handwritten_window
        for _ in range(repeat):
            t = time.perf_counter()
            rels = [con.read_parquet(str(data / f"{k}.parquet")) for k in ("spine", "big_view", "small_view")]
            rows = fn(con, *rels).num_rows
            times.append(time.perf_counter() - t)
    return {"variant": variant, "times_s": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "rows": rows}


def check(data: Path) -> None:
    """featurehouse's result equals the hand-written ASOF query's, row for row."""
    import duckdb

    store = featurehouse_store(data)
    ours = store.training_set_arrow(str(data / "spine.parquet"), FEATURES, timestamp="label_time")
    ours = ours.rename_columns([c.split("__", 1)[-1] for c in ours.column_names])
    con = duckdb.connect()
    ref = reference_sql.handwritten_asof(con, *[con.read_parquet(str(data / f"{k}.parquet"))
                                               for k in ("spine", "big_view", "small_view")])
    a, b = reference_sql.canonical(ours), reference_sql.canonical(ref.select(ours.column_names))
    assert a.equals(b), "featurehouse and the hand-written query disagree"
    print(f"check: featurehouse == hand-written ASOF on {a.num_rows:,} rows", file=sys.stderr)


# -- the whole run ---------------------------------------------------------------------------------

def in_subprocess(args: list[str], python: str = sys.executable) -> dict:
    out = subprocess.run([python, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def feast_python() -> str:
    out = subprocess.run(["bash", str(HERE / "feast_env.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"could not set up Feast's venv:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="100k spine rows instead of 1M")
    ap.add_argument("--skip-feast", action="store_true")
    ap.add_argument("--skip-feast-file", action="store_true", help="skip Feast's file store (~11 min, ~18 GB)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.variant:
        print(json.dumps(run_variant(a.variant, a.data, a.repeat)))
        return
    if a.check_only:
        check(a.data)
        return

    sizes = SMALL if a.small else {}
    data_dir = bench_data.DEFAULT_DIR.parent / ("data-small" if a.small else "data")
    files = bench_data.generate(data_dir, **sizes)
    data = Path(files["spine"]).parent
    print(f"data: {data} ({', '.join(f'{k}' for k in files)})", file=sys.stderr)
    subprocess.run([sys.executable, __file__, "--check-only", "--data", str(data)], check=True)

    results = {}
    for variant in ("handwritten_asof", "handwritten_window", "featurehouse", "featurehouse_unordered"):
        print(f"running {variant} x{a.repeat}", file=sys.stderr)
        results[variant] = in_subprocess([__file__, "--variant", variant, "--data", str(data), "--repeat", str(a.repeat)])
    if not a.skip_feast:
        py = feast_python()
        stores = ["duckdb"] + ([] if a.skip_feast_file else ["file"])
        for store in stores:
            repeat = a.repeat if store == "duckdb" else 1  # the file store takes minutes and ~18 GB a run
            print(f"running feast_{store} x{repeat}", file=sys.stderr)
            r = in_subprocess([str(HERE / "feast_driver.py"), "--data", str(data), "--store", store,
                               "--repeat", str(repeat)], python=py)
            r["variant"] = f"feast_{store}"
            results[f"feast_{store}"] = r

    fastest_ref = min(results["handwritten_asof"]["median_s"], results["handwritten_window"]["median_s"])
    print(f"\n{'variant':<24}{'median s':>10}{'vs best hand-written':>22}{'peak RSS MB':>13}{'rows':>11}")
    for name, r in results.items():
        print(f"{name:<24}{r['median_s']:>10.2f}{r['median_s'] / fastest_ref:>21.2f}x{r['peak_rss_mb']:>13.0f}{r['rows']:>11,}")
    fh = results["featurehouse"]["median_s"]
    print()
    print(f"featurehouse / best hand-written SQL: {fh / fastest_ref:.2f}x (goal <= 1.25x)")
    for store, goal in (("feast_duckdb", 1.5), ("feast_file", 10)):
        if store in results:
            r = results[store]
            print(f"{store} / featurehouse: {r['median_s'] / fh:.1f}x faster (goal >= {goal}x); "
                  f"memory {results['featurehouse']['peak_rss_mb']:.0f} MB vs {r['peak_rss_mb']:.0f} MB"
                  + (f"; Feast returned {r['rows']:,} of {r.get('spine_rows', r['rows']):,} rows" if r.get('spine_rows') and r['rows'] != r['spine_rows'] else ""))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
