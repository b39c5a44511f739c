"""Benchmark: batch scoring inputs (`FeatureStore.batch_features`) against hand-written DuckDB SQL.

On the example project (run `featurehouse demo` first, or let this script run it), the fraud model's
user features (user_txn_stats and user_profile) are read for every user (`--all`) and for 10,000
given ids, by featurehouse and by a hand-written query: `QUALIFY row_number() = 1` per view, the views
joined to the keys, status and age computed in SQL with CASE. Both results are checked equal, value
for value, before their times are compared (medians of --repeat runs).

    python bench/batch_features.py [--repeat 3] [--ids 10000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from featurehouse import FeatureStore  # noqa: E402

PROJECT = ROOT / "dbt_project"


def median_time(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def reference_sql(store, names: list[str], keys_sql: str, now) -> str:
    """What one would write by hand: the latest row per user of each view, joined to the keys, judged."""
    views = {}
    for name in names:
        view, feature = store.registry.resolve(name)
        views.setdefault(view.name, (view, []))[1].append(feature.column)
    ctes, selects, joins = [], ["k.entity_id"], []
    now_sql = f"TIMESTAMP '{now.isoformat(sep=' ')}'"
    for i, (view, columns) in enumerate(views.values()):
        order = f'"{view.event_time}" DESC' + (f', "{view.created_at}" DESC NULLS LAST' if view.created_at else "")
        cols = ", ".join(f'"{c}"' for c in columns)
        ctes.append(f'v{i} AS (SELECT user_id, "{view.event_time}" AS et, {cols} FROM '
                    f"{store.warehouse.relation_sql(view.relation)} WHERE \"{view.event_time}\" IS NOT NULL "
                    f"QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY {order}) = 1)")
        age = f"epoch_us({now_sql}) - epoch_us(v{i}.et)"
        ttl = f"{age} > {int(view.ttl.total_seconds() * 1e6)}" if view.ttl else "false"
        slo = f"{age} > {int(view.freshness_slo.total_seconds() * 1e6)}" if view.freshness_slo else "false"
        for c in columns:
            selects.append(f'CASE WHEN {ttl} THEN NULL ELSE v{i}."{c}" END AS "{view.name}__{c}"')
        selects.append(f"CASE WHEN v{i}.et IS NULL THEN 'missing' WHEN {ttl} THEN 'expired' "
                       f"WHEN {slo} THEN 'stale' ELSE 'ok' END AS \"{view.name}__status\"")
        joins.append(f"LEFT JOIN v{i} ON v{i}.user_id::VARCHAR = k.entity_id")
    return (f"WITH {', '.join(ctes)} SELECT {', '.join(selects)} FROM ({keys_sql}) k {' '.join(joins)} "
            f"ORDER BY k.row")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ids", type=int, default=10_000)
    a = ap.parse_args()
    if not (PROJECT / ".featurehouse" / "warehouse.duckdb").exists():
        subprocess.run([sys.executable, "-m", "featurehouse.cli.main", "demo", "--no-serve"], check=True)
    store = FeatureStore(PROJECT)
    names = [n for n in store.registry.model("fraud_model").features if n.startswith(("user_txn_stats.", "user_profile."))]
    con = store.warehouse.con
    print(f"{'measure':<44}{'featurehouse':>14}{'reference':>12}{'ratio':>8}")

    # every user the views hold
    ours, ours_s = median_time(lambda: store.batch_features("user", names=names, all_entities=True), a.repeat)
    now = ours.as_of
    union = " UNION ".join(
        f'SELECT user_id, user_id::VARCHAR AS entity_id FROM {store.warehouse.relation_sql(view.relation)} '
        f'WHERE user_id IS NOT NULL AND "{view.event_time}" IS NOT NULL'
        for view in {store.registry.resolve(n)[0].name: store.registry.resolve(n)[0] for n in names}.values())
    keys_all = f"SELECT entity_id, row_number() OVER (ORDER BY user_id) AS row FROM ({union})"
    ref, ref_s = median_time(lambda: con.sql(reference_sql(store, names, keys_all, now)).to_arrow_table(), a.repeat)
    check_equal(ours.table, ref, names)
    print(f"{f'batch --all ({ours.rows:,} users x {len(names)} features)':<44}{ours_s:>13.3f}s{ref_s:>11.3f}s"
          f"{ours_s / ref_s:>7.2f}x")

    # given ids
    rng = random.Random(7)
    ids = [str(rng.randint(1, max(ours.rows, 1))) for _ in range(a.ids)]
    con.execute("CREATE OR REPLACE TEMP TABLE bench_ids AS SELECT unnest($ids) AS entity_id, "
                "generate_subscripts($ids, 1) AS row", {"ids": ids})
    ours_ids, ours_ids_s = median_time(lambda: store.batch_features("user", ids, names=names, as_of=now), a.repeat)
    ref_ids, ref_ids_s = median_time(
        lambda: con.sql(reference_sql(store, names, "SELECT * FROM bench_ids", now)).to_arrow_table(), a.repeat)
    check_equal(ours_ids.table, ref_ids, names)
    print(f"{f'batch --ids ({len(ids):,} ids)':<44}{ours_ids_s:>13.3f}s{ref_ids_s:>11.3f}s"
          f"{ours_ids_s / ref_ids_s:>7.2f}x")
    print(f"{'':<44}{ours.rows / ours_s:>12,.0f}/s  users per second, --all")
    store.close()


def check_equal(ours, ref, names) -> None:
    assert ours.num_rows == ref.num_rows, (ours.num_rows, ref.num_rows)
    for name in names:
        column = name.replace(".", "__", 1)  # the training set's column name
        assert ours.column(column).to_pylist() == ref.column(column).to_pylist(), name
    for view in sorted({n.partition(".")[0] for n in names}):
        assert ours.column(f"{view}__status").to_pylist() == ref.column(f"{view}__status").to_pylist(), view


if __name__ == "__main__":
    main()
