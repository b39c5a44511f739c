"""Hand-written DuckDB point-in-time joins: the SQL baseline of bench/training_set.py.

Semantics (Feast's contract): for every spine row and each view, take the view
row with the greatest ``event_time`` such that

    label_time - TTL <= event_time <= label_time          (both inclusive)

ties on ``event_time`` going to the greatest ``created_at``; all features NULL
when there is no such row.  TTL is 7 days for big_view, 365 days for small_view.

Two formulations, written the way one would by hand:

* ``handwritten_asof``   -- dedupe each view on (user_id, event_time) keeping
  the latest created_at (hash aggregate with arg_max), then two chained
  ``ASOF LEFT JOIN``s; the TTL lower bound is a CASE around the joined values
  (DuckDB's ASOF allows a single inequality).
* ``handwritten_window`` -- the portable form: a band join on user_id and the
  TTL window, ``QUALIFY row_number() OVER (PARTITION BY spine key ORDER BY
  event_time DESC, created_at DESC) = 1``, then a left join back to the spine.
  (Assumes the spine is keyed by (user_id, label_time); duplicate spine rows
  are fine, they get identical features.)

Both return a ``pyarrow.Table``: all spine columns + the 6 feature columns, in
no particular row order.  Inputs may be DuckDB relations, table/view names, or
Parquet paths.  Note: in duckdb 2.0.1 ``Relation.arrow()`` returns a
RecordBatchReader and ``fetch_arrow_table()`` is deprecated -- we use
``to_arrow_table()``.

CLI (project venv):
    python bench/reference_sql.py --data DIR [--repeat 3]   # timings, one JSON line
    python bench/reference_sql.py --check                   # correctness check on small data
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa

BIG_FEATURES = ("txn_count_7d", "amount_sum_7d", "amount_max_7d")
SMALL_FEATURES = ("age_days", "country", "risk_score")
FEATURES = BIG_FEATURES + SMALL_FEATURES
BIG_TTL_DAYS = 7
SMALL_TTL_DAYS = 365


def _to_arrow(rel) -> pa.Table:
    if hasattr(rel, "to_arrow_table"):
        return rel.to_arrow_table()
    return rel.fetch_arrow_table()  # older duckdb


class _Inputs:
    """Expose spine/big/small as temp views with unique names (dropped on exit)."""

    def __init__(self, con, spine, big, small):
        self.con = con
        self.created = []
        tag = uuid.uuid4().hex[:8]
        self.spine, self.big, self.small = (
            self._name(x, f"_fh_ref_{kind}_{tag}") for x, kind in ((spine, "spine"), (big, "big"), (small, "small"))
        )

    def _name(self, x, name):
        if isinstance(x, duckdb.DuckDBPyRelation):
            x.to_view(name, replace=True)
        elif isinstance(x, (str, os.PathLike)) and str(x).endswith(".parquet"):
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM read_parquet('{os.fspath(x)}')")
        elif isinstance(x, str):
            return x  # an existing table / view name
        else:
            raise TypeError(f"expected a DuckDB relation, a table name or a .parquet path, got {type(x)!r}")
        self.created.append(name)
        return name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for name in self.created:
            try:
                self.con.execute(f"DROP VIEW IF EXISTS {name}")
            except duckdb.Error:
                pass


def asof_sql(spine: str, big: str, small: str, big_ttl_days: int = BIG_TTL_DAYS,
             small_ttl_days: int = SMALL_TTL_DAYS) -> str:
    b_ok = f"b.event_time >= s.label_time - INTERVAL {int(big_ttl_days)} DAY"
    m_ok = f"m.event_time >= s.label_time - INTERVAL {int(small_ttl_days)} DAY"
    b_dedup = ", ".join(f"arg_max({c}, created_at) AS {c}" for c in BIG_FEATURES)
    m_dedup = ", ".join(f"arg_max({c}, created_at) AS {c}" for c in SMALL_FEATURES)
    sel = ",\n       ".join(
        [f"CASE WHEN {b_ok} THEN b.{c} END AS {c}" for c in BIG_FEATURES]
        + [f"CASE WHEN {m_ok} THEN m.{c} END AS {c}" for c in SMALL_FEATURES]
    )
    return f"""
WITH b AS (
    SELECT user_id, event_time, {b_dedup}
    FROM {big} GROUP BY user_id, event_time
), m AS (
    SELECT user_id, event_time, {m_dedup}
    FROM {small} GROUP BY user_id, event_time
)
SELECT s.*,
       {sel}
FROM {spine} s
ASOF LEFT JOIN b ON s.user_id = b.user_id AND s.label_time >= b.event_time
ASOF LEFT JOIN m ON s.user_id = m.user_id AND s.label_time >= m.event_time
"""


def window_sql(spine: str, big: str, small: str, big_ttl_days: int = BIG_TTL_DAYS,
               small_ttl_days: int = SMALL_TTL_DAYS) -> str:
    def latest(view, alias, feats, ttl):
        cols = ", ".join(f"{alias}.{c}" for c in feats)
        return f"""
    SELECT s.user_id, s.label_time, {cols}
    FROM (SELECT DISTINCT user_id, label_time FROM {spine}) s
    JOIN {view} {alias}
      ON {alias}.user_id = s.user_id
     AND {alias}.event_time <= s.label_time
     AND {alias}.event_time >= s.label_time - INTERVAL {int(ttl)} DAY
    QUALIFY row_number() OVER (PARTITION BY s.user_id, s.label_time
                               ORDER BY {alias}.event_time DESC, {alias}.created_at DESC) = 1"""

    feats = ", ".join([f"bj.{c}" for c in BIG_FEATURES] + [f"mj.{c}" for c in SMALL_FEATURES])
    return f"""
WITH bj AS ({latest(big, 'b', BIG_FEATURES, big_ttl_days)}
), mj AS ({latest(small, 'm', SMALL_FEATURES, small_ttl_days)}
)
SELECT s.*, {feats}
FROM {spine} s
LEFT JOIN bj ON bj.user_id = s.user_id AND bj.label_time = s.label_time
LEFT JOIN mj ON mj.user_id = s.user_id AND mj.label_time = s.label_time
"""


def handwritten_asof(con, spine_rel, big_rel, small_rel, big_ttl_days: int = BIG_TTL_DAYS,
                     small_ttl_days: int = SMALL_TTL_DAYS) -> pa.Table:
    """Point-in-time join via ASOF LEFT JOIN (TTL as CASE around it)."""
    with _Inputs(con, spine_rel, big_rel, small_rel) as i:
        return _to_arrow(con.sql(asof_sql(i.spine, i.big, i.small, big_ttl_days, small_ttl_days)))


def handwritten_window(con, spine_rel, big_rel, small_rel, big_ttl_days: int = BIG_TTL_DAYS,
                       small_ttl_days: int = SMALL_TTL_DAYS) -> pa.Table:
    """Point-in-time join via band join + row_number() QUALIFY (portable form)."""
    with _Inputs(con, spine_rel, big_rel, small_rel) as i:
        return _to_arrow(con.sql(window_sql(i.spine, i.big, i.small, big_ttl_days, small_ttl_days)))


def canonical(table: pa.Table) -> pa.Table:
    """Sort by (user_id, label_time) for comparisons."""
    return table.sort_by([("user_id", "ascending"), ("label_time", "ascending")])


def _oracle_rows(spine, big, small, sample: int, seed: int = 0):
    """Plain-Python point-in-time lookup for a sample of spine rows (independent of SQL)."""
    import numpy as np

    sp = spine.to_pandas()
    rows = sp.sample(n=min(sample, len(sp)), random_state=seed)
    out = {(r.user_id, r.label_time): () for r in rows.itertuples(index=False)}
    for view, feats, ttl in ((big.to_pandas(), BIG_FEATURES, BIG_TTL_DAYS), (small.to_pandas(), SMALL_FEATURES, SMALL_TTL_DAYS)):
        by_user = dict(tuple(view.groupby("user_id")))
        for r in rows.itertuples(index=False):
            g = by_user.get(r.user_id)
            vals = (None,) * len(feats)
            if g is not None:
                lo = r.label_time - np.timedelta64(ttl, "D")
                c = g[(g.event_time <= r.label_time) & (g.event_time >= lo)]
                if len(c):
                    best = c.sort_values(["event_time", "created_at"]).iloc[-1]
                    vals = tuple(best[f] for f in feats)
            out[(r.user_id, r.label_time)] += vals
    return out


def check(data_dir=None, con=None, oracle_sample: int = 500, verbose: bool = True) -> dict:
    """Correctness check on small generated data: ASOF == window, and both match
    a plain-Python oracle on a sample of spine rows.  Raises AssertionError."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_data

    if data_dir is None:
        data_dir = bench_data.DEFAULT_DIR.parent / "check-data"
    d = bench_data.generate(data_dir, spine_rows=20_000, big_rows=100_000, small_rows=6_000, entities=2_000, seed=11)
    con = con or duckdb.connect()
    spine, big, small = (con.read_parquet(d[k]) for k in ("spine", "big_view", "small_view"))
    a = canonical(handwritten_asof(con, spine, big, small))
    w = canonical(handwritten_window(con, spine, big, small))
    assert a.schema.names == w.schema.names == ["user_id", "label_time", "label", *FEATURES], (a.schema.names, w.schema.names)
    assert a.num_rows == w.num_rows == _to_arrow(spine).num_rows
    assert a.equals(w), "ASOF and window forms disagree"
    hits_big = a.num_rows - a.column("txn_count_7d").null_count
    hits_small = a.num_rows - a.column("age_days").null_count
    assert 0 < hits_big < a.num_rows and 0 < hits_small < a.num_rows, "data exercises no TTL misses/hits"

    expected = _oracle_rows(_to_arrow(spine), _to_arrow(big), _to_arrow(small), oracle_sample)
    got = {(r["user_id"], r["label_time"]): tuple(r[f] for f in FEATURES) for r in a.to_pylist()}
    bad = []
    for key, exp in expected.items():
        k = (int(key[0]), key[1].to_pydatetime())
        g = got[k]
        norm = tuple(None if (e is None) else (e.item() if hasattr(e, "item") else e) for e in exp)
        if g != norm:
            bad.append((k, g, norm))
    assert not bad, f"{len(bad)} rows differ from the oracle, e.g. {bad[:3]}"
    res = {"rows": a.num_rows, "big_hits": hits_big, "small_hits": hits_small, "oracle_rows": len(expected), "ok": True}
    if verbose:
        print(json.dumps(res))
    return res


def bench(data_dir, repeat: int = 3) -> dict:
    data_dir = Path(data_dir)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    rels = [con.read_parquet(str(data_dir / f"{k}.parquet")) for k in ("spine", "big_view", "small_view")]
    out = {}
    for name, fn in (("asof", handwritten_asof), ("window", handwritten_window)):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            tbl = fn(con, *rels)
            times.append(round(time.perf_counter() - t0, 3))
        out[name] = {"times_s": times, "median_s": statistics.median(times), "rows": tbl.num_rows}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["duckdb_version"] = duckdb.__version__
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="hand-written DuckDB point-in-time baselines")
    ap.add_argument("--data", help="directory with spine/big_view/small_view.parquet")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--check", action="store_true", help="run the correctness check and exit")
    a = ap.parse_args(argv)
    if a.check:
        check()
        return
    if not a.data:
        ap.error("--data is required (or --check)")
    print(json.dumps(bench(a.data, a.repeat)))


if __name__ == "__main__":
    main()
