"""Distribution profiles of feature columns, kept with a recorded training set so that served values
can later be compared with what the model was trained on (PSI, `featurehouse drift`).

Numeric columns: decile edges of the non-null values and the share of values in each bin; other
columns: the shares of the 20 most frequent values (the rest pooled as "__other__"). Nulls are a bin
of their own in both, since a feature that starts coming back null is drift too.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TOP_VALUES = 20
OTHER = "__other__"


def profile_column(column: pa.ChunkedArray | pa.Array) -> dict[str, Any]:
    n = len(column)
    nulls = column.null_count
    kind = "numeric" if (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                         or pa.types.is_decimal(column.type)) else "categorical"
    out: dict[str, Any] = {"kind": kind, "count": n, "null_rate": nulls / n if n else 0.0}
    values = column.drop_null() if hasattr(column, "drop_null") else pc.drop_null(column)
    if kind == "numeric":
        arr = np.asarray(values.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            out.update(edges=[], shares=[])
            return out
        edges = sorted(set(np.quantile(arr, np.linspace(0.1, 0.9, 9)).tolist()))
        out.update(edges=edges, shares=numeric_shares(arr, edges), mean=float(arr.mean()), std=float(arr.std()))
    else:
        counts: dict[str, int] = {}
        for v in values.cast(pa.string()).to_pylist() if not pa.types.is_string(values.type) else values.to_pylist():
            counts[v] = counts.get(v, 0) + 1
        total = max(1, len(values))
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:TOP_VALUES]
        shares = {k: c / total for k, c in top}
        rest = 1.0 - sum(shares.values())
        if rest > 1e-12:
            shares[OTHER] = rest
        out["shares"] = shares
    return out


def numeric_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Share of values per bin: (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    if values.size == 0:
        return [0.0] * (len(edges) + 1)
    bins = np.searchsorted(np.asarray(edges), values, side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return (counts / values.size).tolist()


def categorical_shares(values: Iterable[Any], known: Iterable[str]) -> dict[str, float]:
    known = set(known)
    counts: dict[str, int] = {}
    total = 0
    for v in values:
        key = str(v) if str(v) in known else OTHER
        counts[key] = counts.get(key, 0) + 1
        total += 1
    return {k: c / total for k, c in counts.items()} if total else {}


def psi(expected: list[float] | dict, actual: list[float] | dict, floor: float = 1e-4) -> float:
    """Population stability index: sum over bins of (a - e) * ln(a / e), shares floored to avoid log(0)."""
    if isinstance(expected, dict):
        keys = set(expected) | set(actual)
        pairs = [(expected.get(k, 0.0), actual.get(k, 0.0)) for k in keys]
    else:
        pairs = list(zip(expected, actual))
    total = 0.0
    for e, a in pairs:
        e, a = max(e, floor), max(a, floor)
        total += (a - e) * math.log(a / e)
    return total


def profile_table(table: pa.Table, columns: Iterable[str]) -> dict[str, dict]:
    return {c: profile_column(table.column(c)) for c in columns}
