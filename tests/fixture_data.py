"""Deterministic edge-case data for the dbt fixture project: ties, TTL and delay boundaries, NULLs, unicode keys."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pyarrow as pa

BASE = datetime(2026, 3, 1, 12, 0, 0)
INSTANTS = [BASE + timedelta(seconds=s) for s in range(0, 12)] + [BASE + timedelta(seconds=4, microseconds=250)]
MERCHANTS = ["ü", "x y", "o'neil", "日本"]
TS = pa.timestamp("us")


def make(seed: int = 7) -> dict[str, list[dict]]:
    rnd = random.Random(seed)
    key = lambda: {"card_id": rnd.randint(0, 2), "merchant": rnd.choice(MERCHANTS)}  # noqa: E731
    maybe = lambda values, p=0.1: None if rnd.random() < p else rnd.choice(values)  # noqa: E731
    stats = [{**key(), "event_time": maybe(INSTANTS, 0.05), "created_at": maybe(INSTANTS),
              "cnt": maybe([0, 1, 2, 3]), "label_txt": maybe(["", "a", "Z", "é"])} for _ in range(90)]
    profile = [{**key(), "ts": maybe(INSTANTS, 0.05), "score": maybe([-1.5, 0.0, 0.25, 2.0])} for _ in range(30)]
    spine = []
    for i in range(150):
        row = {"row_no": i, **key(), "as_of": maybe(INSTANTS + [BASE - timedelta(days=1)], 0.03), "label": rnd.randint(0, 1)}
        if rnd.random() < 0.05:
            row["merchant"] = None
        spine.append(row)
    spine += [dict(spine[3]), dict(spine[3])]  # duplicate spine rows stay duplicates
    return {"stats": stats, "profile": profile, "spine": spine}


SCHEMAS = {
    "stats": pa.schema([("card_id", pa.int64()), ("merchant", pa.string()), ("event_time", TS), ("created_at", TS),
                        ("cnt", pa.int64()), ("label_txt", pa.string())]),
    "profile": pa.schema([("card_id", pa.int64()), ("merchant", pa.string()), ("ts", TS), ("score", pa.float64())]),
    "spine": pa.schema([("row_no", pa.int64()), ("card_id", pa.int64()), ("merchant", pa.string()), ("as_of", TS),
                        ("label", pa.int64())]),
}


def tables(data: dict[str, list[dict]]) -> dict[str, pa.Table]:
    return {name: pa.Table.from_pylist(rows, schema=SCHEMAS[name]) for name, rows in data.items()}
