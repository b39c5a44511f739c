"""Point-in-time correct training sets: resolve features, load the spine, run the generated join."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from featurehouse.errors import FeaturehouseError, InvalidSpine, UnknownEntity
from featurehouse.offline.point_in_time import PointInTimeQuery, ViewRequest
from featurehouse.offline.spine import load_spine
from featurehouse.offline.warehouse import Warehouse
from featurehouse.registry.model import Feature, FeatureRef, FeatureView, Registry

if TYPE_CHECKING:
    import pandas as pd

    from featurehouse.types import Family

Progress = Callable[[str], None]


@functools.cache
def pandas_types() -> dict[pa.DataType, Any]:
    """Arrow type -> pandas dtype in `to_pandas`: NumPy's int64 has no NULL, so pandas' default turns an
    integer column with one NULL into float64 and 9007199254740993 into 9007199254740992.0. (Built on
    first use: importing pandas would slow down every process that imports the store, servers too.)"""
    import pandas as pd

    return {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype(),
    }


class LineageNotRecorded(UserWarning):
    """A training set was built but recording it for lineage (or publishing its feature versions) failed."""


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """`table` as a DataFrame whose integers and booleans are pandas' nullable dtypes (pandas_types)."""
    return table.to_pandas(types_mapper=pandas_types().get)


@dataclass
class TrainingSet:
    """A built training set with what it took to make it (for lineage and for users who look).

    `to_pandas()` keeps every value exact: integer columns become pandas' nullable `Int8`..`Int64` /
    `UInt8`..`UInt64` and booleans `boolean` (NULL is `pd.NA`), whether or not this result holds a
    NULL, so a column's dtype never depends on the data; floats stay `float64` (NULL is NaN), strings
    keep pandas' default string dtype (`object` on pandas 2, `str` on pandas 3), decimals are `Decimal`
    objects and timestamps `datetime64`. `table` (Arrow) holds the engine's types unchanged.

    `record` is the lineage record (None when not recorded). When recording failed, the training set
    is still returned: `record_error` says why (and a LineageNotRecorded warning was issued); if the
    record was written but publishing its feature versions failed, `record` is set and `record_error`
    names the failure too.
    """

    table: pa.Table
    sql: str
    plan: str
    engine: str
    features: list[str]  # versioned names, e.g. user_txn_stats.txn_count_1h@1
    columns: list[str]  # the output column of each feature, e.g. user_txn_stats__txn_count_1h
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    record: Any = None  # the TrainingSetRecord, once recorded for lineage
    record_error: str | None = None  # why recording it for lineage failed, when it did

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def to_pandas(self) -> pd.DataFrame:
        return arrow_to_pandas(self.table)


def plan_requests(
    registry: Registry, features: Sequence[str], as_known_at: bool = False
) -> list[ViewRequest]:
    """Group requested features by view and version, naming output columns `view__column`.

    When one request holds two versions of a view, its columns are `view__column__vN` instead.
    """
    if not features:
        raise FeaturehouseError("no features requested")
    grouped: dict[tuple[str, int], tuple[FeatureView, list[Feature]]] = {}
    for name in features:
        view, feature = registry.resolve(FeatureRef.parse(name))
        entry = grouped.setdefault((view.name, view.version), (view, []))
        if feature not in entry[1]:
            entry[1].append(feature)
    versions_per_view: dict[str, int] = {}
    for view_name, _ in grouped:
        versions_per_view[view_name] = versions_per_view.get(view_name, 0) + 1
    requests = []
    for (view_name, version), (view, feats) in grouped.items():
        suffix = f"__v{version}" if versions_per_view[view_name] > 1 else ""
        known_at = as_known_at or view.as_known_at
        if known_at and not view.created_at:
            raise FeaturehouseError(
                f"feature view '{view.versioned_name}' has no created_at column, so it cannot be read 'as known at'"
            )
        requests.append(
            ViewRequest(view, tuple(feats), tuple(f"{view.name}__{f.column}{suffix}" for f in feats), known_at)
        )
    return requests


def build_training_set(
    warehouse: Warehouse,
    registry: Registry,
    spine: Any,
    features: Sequence[str],
    timestamp: str,
    entity: str | None = None,
    as_known_at: bool = False,
    keep_order: bool = True,
    include_event_times: bool = False,
    plan: str | None = None,
    progress: Progress | None = None,
) -> TrainingSet:
    """Join each spine row to every requested feature as of its timestamp (docs/semantics.md)."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if isinstance(features, str):
        features = [f for f in features.split(",") if f.strip()]
    requests = plan_requests(registry, features, as_known_at)
    if entity is not None and entity not in registry.entities:
        raise UnknownEntity(f"unknown entity '{entity}' (declared: {', '.join(sorted(registry.entities))})")

    say("loading spine")
    t = time.perf_counter()
    loaded = load_spine(warehouse, spine, timestamp)
    timings["load_spine"] = time.perf_counter() - t
    try:
        _check_spine(loaded.columns, requests, timestamp, entity, registry)
        query = PointInTimeQuery(
            spine=exp.table_(loaded.table, quoted=True),
            spine_columns=tuple(loaded.columns),
            timestamp=timestamp,
            requests=tuple(requests),
            keep_order=keep_order,
            include_event_times=include_event_times,
        )
        chosen = plan or query.plan(warehouse.dialect)
        sql = query.to_sql(warehouse.dialect, chosen)
        say(f"joining {loaded.rows if loaded.rows is not None else 'the'} spine rows to {len(requests)} view(s) ({chosen} plan)")
        t = time.perf_counter()
        table = warehouse.fetch_arrow(sql)
        timings["join"] = time.perf_counter() - t
    finally:
        try:
            warehouse.execute(f"DROP TABLE IF EXISTS {exp.to_identifier(loaded.table, quoted=True).sql(warehouse.dialect)}")
        except Exception:  # noqa: BLE001, S110 - a failed query can leave a PostgreSQL session unusable until rollback
            pass
    return TrainingSet(
        table=table,
        sql=sql,
        plan=chosen,
        engine=warehouse.dialect,
        features=[f.versioned_name for r in requests for f in r.features],
        columns=[name for r in requests for name in r.output_names],
        seconds=time.perf_counter() - started,
        timings=timings,
    )


def _check_spine(columns: dict[str, Family], requests: list[ViewRequest], timestamp: str,
                 entity: str | None, registry: Registry) -> None:
    """Every view's key columns must be in the spine; output names must not clash with spine columns."""
    needed: list[tuple[str, str, str]] = []
    if entity is not None:
        needed += [(k, entity, "the spine's entity") for k in registry.entities[entity].keys]
    for r in requests:
        needed += [(k, r.view.entity.name, f"feature view '{r.view.name}'") for k in r.view.entity.keys]
    for key, ent, who in needed:
        if key not in columns:
            raise InvalidSpine(
                f"spine has no column '{key}' (key of entity '{ent}', needed by {who}); spine columns: {', '.join(columns)}"
            )
    for r in requests:
        for out in r.output_names:
            if out in columns:
                raise InvalidSpine(f"spine column '{out}' clashes with the output column of feature "
                                   f"'{out.replace('__', '.', 1)}'")
