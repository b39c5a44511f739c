"""Deterministic synthetic data for the training-set (point-in-time join) benchmark.

``generate(out_dir, ...)`` writes three Parquet files:

* ``spine.parquet``      user_id int64, label_time timestamp[us], label int8
* ``big_view.parquet``   user_id, event_time, created_at, txn_count_7d int64,
                         amount_sum_7d float64, amount_max_7d float64      (TTL 7 days)
* ``small_view.parquet`` user_id, event_time, created_at, age_days int64,
                         country string, risk_score float64               (TTL 365 days)

All timestamps are naive UTC, microsecond precision.  Shape of the data:

* entity activity is skewed (gamma-distributed rates), so some users are very
  active, many are quiet and a few have no feature rows at all; with the default
  sizes roughly half of the spine rows find a big_view row inside the 7-day TTL;
* big/small view rows start before the spine window (30 / 180 days of lead-in);
* ~1% of view rows are *corrections*: same (user_id, event_time), later
  created_at, different values -- the point-in-time join must keep the latest
  created_at;
* ~2% of spine rows sit exactly on a big_view event_time (inclusive upper bound)
  and ~0.5% exactly TTL (7 days) after one (inclusive lower bound);
* (user_id, label_time) is unique in the spine, and (user_id, event_time,
  created_at) is unique in each view, so the expected result is unambiguous.

Files are cached: if ``params.json`` in ``out_dir`` matches the arguments (and
the generator version) and the files exist, nothing is regenerated.

CLI:  python bench/bench_data.py [--out DIR] [--spine-rows N] [--big-rows N] ...
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GEN_VERSION = 1
DEFAULT_DIR = Path(os.environ.get("FEATUREHOUSE_BENCH_DATA", Path.home() / ".cache" / "featurehouse-bench" / "data"))
FILES = ("spine.parquet", "big_view.parquet", "small_view.parquet")

US = 1_000_000
DAY_US = 86_400 * US
START_US = int(np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64))
SPAN_US = 365 * DAY_US
BIG_TTL_US = 7 * DAY_US
BIG_LEAD_US = 30 * DAY_US
SMALL_LEAD_US = 180 * DAY_US

COUNTRIES = np.array(
    ["US", "GB", "DE", "FR", "IN", "BR", "CA", "AU", "JP", "ES",
     "IT", "NL", "SE", "PL", "MX", "NG", "ZA", "KR", "SG", "CH"],
    dtype=object,
)


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype("datetime64[us]"), type=pa.timestamp("us"))


def _make_unique_times(user: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Nudge later duplicates of (user, t) by +1us until the pair is unique."""
    t = t.copy()
    while True:
        order = np.lexsort((t, user))
        u, s = user[order], t[order]
        dup = np.zeros(len(order), dtype=bool)
        dup[1:] = (u[1:] == u[:-1]) & (s[1:] == s[:-1])
        if not dup.any():
            return t
        t[order[dup]] += 1


def _view_times(rng, n, entity_p, n_entities, lead_us):
    users = rng.choice(n_entities, size=n, p=entity_p).astype(np.int64)
    # whole seconds, like most event logs
    secs = rng.integers(0, (SPAN_US + lead_us) // US, size=n, dtype=np.int64)
    event = START_US - lead_us + secs * US
    # created_at = event_time + ingestion lag (0..2h, microsecond jitter)
    created = event + rng.integers(0, 2 * 3600 * US, size=n, dtype=np.int64)
    return users, event, created


def _add_corrections(rng, users, event, created, frac):
    """Append corrected copies of a fraction of rows (same key, later created_at)."""
    n = len(users)
    k = int(n * frac)
    idx = rng.choice(n, size=k, replace=False)
    users = np.concatenate([users, users[idx]])
    event = np.concatenate([event, event[idx]])
    # corrections arrive 1h..3d after the original was created
    created = np.concatenate([created, created[idx] + rng.integers(3600 * US, 3 * DAY_US, size=k, dtype=np.int64)])
    return users, event, created, idx


def _big_view(rng, n, entity_p, n_entities):
    users, event, created = _view_times(rng, n, entity_p, n_entities, BIG_LEAD_US)
    m = len(users)
    txn = rng.poisson(4.0, size=m).astype(np.int64) + 1
    amax = np.round(rng.lognormal(3.5, 1.0, size=m), 2)
    asum = np.round(amax * (1.0 + (txn - 1) * rng.uniform(0.2, 0.9, size=m)), 2)
    users, event, created, idx = _add_corrections(rng, users, event, created, 0.01)
    k = len(idx)
    txn_c = txn[idx] + rng.integers(0, 3, size=k)
    amax_c = np.round(amax[idx] * rng.uniform(1.0, 1.5, size=k), 2)
    asum_c = np.round(asum[idx] + (amax_c - amax[idx]) + rng.uniform(0, 50, size=k), 2)
    txn = np.concatenate([txn, txn_c])
    amax = np.concatenate([amax, amax_c])
    asum = np.concatenate([asum, asum_c])
    order = np.lexsort((created, event))  # stored in event-time order, like a log
    return {
        "user_id": users[order],
        "event_time": event[order],
        "created_at": created[order],
        "txn_count_7d": txn[order],
        "amount_sum_7d": asum[order],
        "amount_max_7d": amax[order],
    }


def _small_view(rng, n, entity_p, n_entities):
    users, event, created = _view_times(rng, n, entity_p, n_entities, SMALL_LEAD_US)
    m = len(users)
    age = rng.integers(0, 3650, size=m, dtype=np.int64)
    cp = 1.0 / np.arange(1, len(COUNTRIES) + 1)
    country_idx = rng.choice(len(COUNTRIES), size=m, p=cp / cp.sum())
    risk = np.round(rng.beta(2.0, 5.0, size=m), 6)
    users, event, created, idx = _add_corrections(rng, users, event, created, 0.01)
    k = len(idx)
    age = np.concatenate([age, age[idx] + 1])
    country_idx = np.concatenate([country_idx, country_idx[idx]])
    risk = np.concatenate([risk, np.round(rng.beta(2.0, 5.0, size=k), 6)])
    order = np.lexsort((created, event))
    return {
        "user_id": users[order],
        "event_time": event[order],
        "created_at": created[order],
        "age_days": age[order],
        "country": COUNTRIES[country_idx[order]],
        "risk_score": risk[order],
    }


def _spine(rng, n, n_entities, big):
    users = rng.integers(0, n_entities, size=n, dtype=np.int64)
    label_time = START_US + rng.integers(0, SPAN_US, size=n, dtype=np.int64)
    # edge cases: exactly on a big_view event_time, and exactly TTL after one
    n_eq, n_ttl = int(n * 0.02), int(n * 0.005)
    in_window = np.flatnonzero(big["event_time"] >= START_US)
    pick = rng.choice(in_window, size=n_eq + n_ttl, replace=False)
    slots = rng.choice(n, size=n_eq + n_ttl, replace=False)
    users[slots] = big["user_id"][pick]
    label_time[slots] = big["event_time"][pick]
    label_time[slots[n_eq:]] += BIG_TTL_US
    label_time = _make_unique_times(users, label_time)
    label = (rng.random(n) < 0.1).astype(np.int8)
    return {"user_id": users, "label_time": label_time, "label": label}


def _write(path: Path, cols: dict, ts_cols: tuple, str_cols: tuple = ()) -> None:
    arrays, names = [], []
    for name, v in cols.items():
        if name in ts_cols:
            arrays.append(_ts(v))
        elif name in str_cols:
            arrays.append(pa.array(v, type=pa.string()))
        else:
            arrays.append(pa.array(v))
        names.append(name)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_arrays(arrays, names=names), tmp, compression="snappy")
    os.replace(tmp, path)


def generate(
    out_dir=DEFAULT_DIR,
    spine_rows: int = 1_000_000,
    big_rows: int = 5_000_000,
    small_rows: int = 300_000,
    entities: int = 100_000,
    seed: int = 7,
    force: bool = False,
) -> dict:
    """Write spine/big_view/small_view Parquet files into ``out_dir`` (cached).

    ``big_rows`` / ``small_rows`` are the number of *original* rows; ~1% of
    corrections are appended on top.  Returns {"spine": path, "big_view": path,
    "small_view": path, "params": {...}, "cached": bool}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = {
        "version": GEN_VERSION,
        "spine_rows": int(spine_rows),
        "big_rows": int(big_rows),
        "small_rows": int(small_rows),
        "entities": int(entities),
        "seed": int(seed),
    }
    paths = {f[: -len(".parquet")]: out / f for f in FILES}
    pfile = out / "params.json"
    result = {**{k: str(v) for k, v in paths.items()}, "params": params}
    if not force and pfile.exists() and all(p.exists() for p in paths.values()):
        try:
            if json.loads(pfile.read_text()) == params:
                return {**result, "cached": True}
        except ValueError:
            pass
    pfile.unlink(missing_ok=True)

    rng = np.random.default_rng(seed)
    # skewed activity: gamma(0.7) rates; a few users end up with no rows at all
    w = rng.gamma(0.7, 1.0, size=entities)
    p = w / w.sum()
    big = _big_view(rng, big_rows, p, entities)
    small = _small_view(rng, small_rows, p, entities)
    spine = _spine(rng, spine_rows, entities, big)

    ts = ("event_time", "created_at", "label_time")
    _write(paths["big_view"], big, ts)
    _write(paths["small_view"], small, ts, ("country",))
    _write(paths["spine"], spine, ts)
    pfile.write_text(json.dumps(params, indent=1, sort_keys=True))
    return {**result, "cached": False}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_DIR))
    ap.add_argument("--spine-rows", type=int, default=1_000_000)
    ap.add_argument("--big-rows", type=int, default=5_000_000)
    ap.add_argument("--small-rows", type=int, default=300_000)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = generate(a.out, a.spine_rows, a.big_rows, a.small_rows, a.entities, a.seed, a.force)
    res["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
