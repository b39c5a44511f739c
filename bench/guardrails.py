"""Benchmark: the guardrails on the example project, each against a hand-written reference in the same run.

  parity --all            featurehouse check_parity over every entity of every online view, against a
                          hand-written loop: DuckDB `QUALIFY row_number() = 1` for the latest rows, redis-py
                          pipelined HMGET of 500, msgpack decode, compare
  skew                    featurehouse measure_skew over N logged vectors (user_txn_stats, 6 features),
                          against one hand-written DuckDB ASOF LEFT JOIN of the logged rows
  freshness, check        wall time of `view_freshness` (all views) and of the schema gate (dbt compile +
                          DESCRIBE of every view)
  serving with logging    `featurehouse serve` req/s (wrk -t2 -c32) at log_sample_rate 0, 0.01 and 1

    python bench/guardrails.py [--vectors 20000] [--duration 8] [--skip-http]

Feast has no parity, skew or deploy-check commands to compare with (its data-quality hooks were
removed in 0.3x); the references here are what one would otherwise write by hand.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from featurehouse import FeatureStore  # noqa: E402
from featurehouse.guard.freshness import view_freshness  # noqa: E402
from featurehouse.guard.parity import check_parity, same  # noqa: E402
from featurehouse.guard.served import land_served  # noqa: E402
from featurehouse.online.codec import decode_values  # noqa: E402
from featurehouse.online.keys import entity_key, time_field, value_field  # noqa: E402
from featurehouse.serving.served_log import SERVED_STREAM, ServedLog  # noqa: E402

PROJECT = ROOT / "dbt_project"
NAMES = ["user_txn_stats.txn_count_1h", "user_txn_stats.txn_count_24h", "user_txn_stats.txn_count_7d",
         "user_txn_stats.amount_sum_24h", "user_txn_stats.amount_sum_7d", "user_txn_stats.amount_max_7d"]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def reference_parity(store, views) -> int:
    """The hand-written equivalent: latest rows by SQL, HMGET in pipelines, decode, compare."""
    con, client = store.warehouse.con, store.online.client
    mismatched = 0
    for view in views:
        keys = ", ".join(f'"{k}"' for k in view.entity.keys)
        order = f'"{view.event_time}" DESC' + (f', "{view.created_at}" DESC' if view.created_at else "")
        cols = ", ".join(f'"{c}"' for c in view.feature_columns)
        rows = con.execute(f'SELECT {keys}, "{view.event_time}", {cols} FROM {store.warehouse.relation_sql(view.relation)} '
                           f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1").fetchall()
        nkeys = len(view.entity.keys)
        fields = [value_field(view.name, view.version), time_field(view.name, view.version)]
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            pipe = client.pipeline(transaction=False)
            for r in chunk:
                pipe.hmget(entity_key(view.entity.name, r[:nkeys]), fields)
            for r, (payload, _times) in zip(chunk, pipe.execute()):
                if payload is None or not all(same(a, b) for a, b in zip(decode_values(payload), r[nkeys + 1:])):
                    mismatched += 1
    return mismatched


def reference_skew(store) -> int:
    """One ASOF join of the landed served values to user_txn_stats (serving_delay 1s, TTL 7 days), compared in SQL."""
    rel = store.warehouse.relation_sql(store.registry.view("user_txn_stats").relation)
    sql = f"""
    WITH served AS (
        SELECT entity_id::BIGINT AS user_id, served_at, feature, value_json
        FROM featurehouse.featurehouse_served_values WHERE feature LIKE 'user_txn_stats.%'),
    latest AS (
        SELECT user_id, event_time, arg_max(COLUMNS(* EXCLUDE (user_id, event_time, created_at)), created_at)
        FROM {rel} GROUP BY user_id, event_time),
    vectors AS (SELECT DISTINCT user_id, served_at FROM served),
    joined AS (
        SELECT v.user_id, v.served_at, l.*
        FROM vectors v ASOF LEFT JOIN latest l
          ON v.user_id = l.user_id AND v.served_at - INTERVAL 1 SECOND >= l.event_time)
    SELECT count(*) FILTER (WHERE s.value_json IS DISTINCT FROM
        CASE WHEN j.event_time IS NULL OR j.event_time < s.served_at - INTERVAL 7 DAY THEN 'null' ELSE
        coalesce(CASE split_part(s.feature, '.', 2)
            WHEN 'txn_count_1h' THEN to_json(j.txn_count_1h) WHEN 'txn_count_24h' THEN to_json(j.txn_count_24h)
            WHEN 'txn_count_7d' THEN to_json(j.txn_count_7d) WHEN 'amount_sum_24h' THEN to_json(j.amount_sum_24h)
            WHEN 'amount_sum_7d' THEN to_json(j.amount_sum_7d) WHEN 'amount_max_7d' THEN to_json(j.amount_max_7d)
        END::VARCHAR, 'null') END)
    FROM served s JOIN joined j USING (user_id, served_at)"""
    return store.warehouse.con.execute(sql).fetchone()[0]


def http_with_logging(url: str, rates, duration: int) -> dict[float, dict]:
    from serve import free_port, wait_for, wrk

    out = {}
    for rate in rates:
        port = free_port()
        env = dict(os.environ, FEATUREHOUSE_REDIS_URL=url, FEATUREHOUSE_LOG_SAMPLE_RATE=str(rate), FEATUREHOUSE_AUTH="none")
        proc = subprocess.Popen([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(PROJECT), "serve",
                                 "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        single = f"http://127.0.0.1:{port}/v1/features/user/1?names={','.join(NAMES)}"
        try:
            wait_for(single, proc)
            out[rate] = wrk(single, duration, 32)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=int, default=20000, help="served vectors logged for the skew benchmark")
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--skip-http", action="store_true")
    a = ap.parse_args()
    if not (PROJECT / ".featurehouse" / "warehouse.duckdb").exists():
        subprocess.run([sys.executable, "-m", "featurehouse.cli.main", "demo", "--no-serve"], check=True)
    store = FeatureStore(PROJECT)
    store.sync()
    views = store.online_views()
    entities = 0
    print(f"{'measure':<48}{'featurehouse':>14}{'reference':>12}{'ratio':>8}")

    def line(name, ours, ref=None, unit="s"):
        ratio = f"{ours / ref:.2f}x" if ref else ""
        ref_text = f"{ref:.3f}{unit}" if ref else "-"
        print(f"{name:<48}{ours:>13.3f}{unit}{ref_text:>12}{ratio:>8}")

    # parity, all entities
    results, ours = timed(lambda: [check_parity(store.warehouse, store.online, v, None) for v in views])
    entities = sum(r.compared for r in results)
    assert all(r.mismatched == 0 for r in results), [(r.versioned_name, r.mismatched) for r in results]
    ref_mismatched, ref = timed(lambda: reference_parity(store, views))
    assert ref_mismatched == 0
    line(f"parity --all ({entities:,} entities, {len(views)} views)", ours, ref)
    print(f"{'':<48}{entities / ours:>12,.0f}/s{entities / ref:>10,.0f}/s")

    # skew over logged vectors
    client = store.online.client
    client.delete(SERVED_STREAM)
    store.warehouse.execute("DROP TABLE IF EXISTS featurehouse.featurehouse_served_values")
    users = [str(u) for u in range(1, 5001)]
    log = ServedLog(1.0, maxlen=10 * a.vectors)
    rng = random.Random(7)
    for start in range(0, a.vectors, 100):
        vectors = store.online_features("user", rng.sample(users, 100), NAMES)
        log.append(client, vectors, "bench")
    landed, land_s = timed(lambda: land_served(client, store.catalog))
    line(f"land the served log ({landed:,} vectors)", land_s)
    skews, ours = timed(lambda: store.skew("bench"))
    ref_mismatches, ref = timed(lambda: reference_skew(store))
    ours_mismatches = sum(s.mismatches for s in skews)
    assert ours_mismatches == ref_mismatches, (ours_mismatches, ref_mismatches)
    line(f"skew ({landed:,} vectors x 6 features)", ours, ref)
    print(f"{'':<48}mismatches: {ours_mismatches:,} (the reference agrees)")

    _, fresh_s = timed(lambda: view_freshness([store.registry.view(n) for n in store.registry.view_names()],
                                              store.warehouse, client))
    line(f"freshness ({len(store.registry.view_names())} views)", fresh_s)
    _, check_nc = timed(lambda: store.check(compile_sql=False))
    line("check --no-compile", check_nc)
    _, check_s = timed(lambda: store.check())
    line("check (dbt compile + DESCRIBE each view)", check_s)

    url = store.online.embedded.url if store.online.embedded else os.environ["FEATUREHOUSE_REDIS_URL"]
    if not a.skip_http and shutil.which("wrk"):
        rates = http_with_logging(url, (0.0, 0.01, 1.0), a.duration)
        base = rates[0.0]["rps"]
        for rate, r in rates.items():
            print(f"serve, log_sample_rate {rate:<5} {r['rps']:>10,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                  f"p99 {r['p99_ms']:.2f} ms  ({r['rps'] / base:.0%} of no logging)")
    client.delete(SERVED_STREAM)
    store.close()


if __name__ == "__main__":
    main()
