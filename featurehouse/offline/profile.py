"""Distribution profiles of feature columns, kept with a recorded training set so that served values
can later be compared with what the model was trained on (PSI, `featurehouse drift`).

Numeric columns: decile edges of the non-null values and the share of values in each bin; other
columns: the shares of the 20 most frequent values (the rest pooled as "__other__"). Nulls are a bin
of their own in both, since a feature that starts coming back null is drift too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TOP_VALUES = 20
OTHER = "__other__"


def profile_column(column: pa.ChunkedArray | pa.Array) -> dict[str, Any]:
    """The profile of one column; never raises on odd values, since a profile is taken after the
    training set was built and must not cost the user their result."""
    n = len(column)
    nulls = column.null_count
    kind = "numeric" if is_numeric(column.type) else "categorical"
    out: dict[str, Any] = {"kind": kind, "count": n, "null_rate": nulls / n if n else 0.0}
    # pc.drop_null: pyarrow.compute makes its kernel wrappers at import, out of a type checker's sight
    values = column.drop_null() if hasattr(column, "drop_null") else pc.call_function("drop_null", [column])
    if kind == "numeric":
        out.update(numeric_profile(as_float64(values)))
    else:
        out["shares"] = top_shares(as_text(values))
    return out


def is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def as_float64(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Numbers as float64 for binning, whatever their width: int64 beyond 2**53, uint64 and decimals
    (DuckDB's HUGEINT arrives as decimal128) lose digits, which edges can afford, instead of raising
    ArrowInvalid as a safe cast does."""
    try:
        floats = pc.cast(values, pa.float64(), safe=False)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # a decimal width this pyarrow cannot cast
        return np.array([float(v) for v in values.to_pylist()], dtype=np.float64)
    return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)


def numeric_profile(arr: np.ndarray) -> dict[str, Any]:
    """Decile edges, bin shares, mean and std of the finite values (NaN and +-inf are left out).

    Values are scaled by a power of two (exact) before numpy sees them, so that sums, squares and
    interpolation between quantiles cannot overflow near the float64 range."""
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"edges": [], "shares": []}
    exponent = int(np.frexp(np.max(np.abs(arr)))[1])
    scaled = np.ldexp(arr, -exponent)  # every value now in [-1, 1]
    edges = sorted({_unscale(q, exponent) for q in np.quantile(scaled, np.linspace(0.1, 0.9, 9))})
    return {"edges": edges, "shares": numeric_shares(arr, edges), "mean": _unscale(scaled.mean(), exponent),
            "std": _unscale(scaled.std(), exponent)}


def _unscale(x: float, exponent: int) -> float:
    return float(np.ldexp(x, exponent))


def as_text(values: pa.ChunkedArray | pa.Array) -> list[str]:
    """Non-null values as text, the keys of a categorical profile; types Arrow cannot cast to string
    (lists, structs, invalid UTF-8 bytes) fall back to Python's str()."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values.to_pylist()
    try:
        return pc.cast(values, pa.string()).to_pylist()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return [str(v) for v in values.to_pylist()]


def top_shares(texts: list[str]) -> dict[str, float]:
    """Shares of the TOP_VALUES most frequent values, the rest pooled as OTHER."""
    if not texts:
        return {}
    counts: dict[str, int] = {}
    for v in texts:
        counts[v] = counts.get(v, 0) + 1
    total = len(texts)
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:TOP_VALUES]
    shares = {k: c / total for k, c in top}
    rest = 1.0 - sum(shares.values())
    if rest > 1e-12:
        shares[OTHER] = rest
    return shares


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
        assert isinstance(actual, dict)  # both are shares of one profile's kind: categories or bins
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
