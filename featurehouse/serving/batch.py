"""Batch scoring: the vectors serving would answer, read from the warehouse for many entities at once.

A batch score and an online score of the same entity must see the same inputs. So the features are
resolved as serving resolves them (`plan_request`: names or a model's features of one entity type,
active or pinned versions), each view's latest row is the sync's own SQL (`latest_values_sql`: the
row the online store holds), keys meet as text (as in the online key layout), and every value is
judged by serving's one rule (`value_status`: TTL expiry withholds it, the SLO makes it stale). The
only difference is the clock: `as_of` reads the warehouse as it was then (rows with event_time <=
as_of, judged at as_of), and no materializer lag applies, since nothing is materialized.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from featurehouse.errors import FeaturehouseError, InvalidRequest, InvalidSpine
from featurehouse.offline.point_in_time import column
from featurehouse.offline.warehouse import Warehouse, utc_now
from featurehouse.registry.model import FeatureRef, FeatureView, Registry
from featurehouse.serving.vectors import parse_ids, plan_request, value_status
from featurehouse.sync.latest import latest_values_sql

ROW = "__fh_row"
ENTITY_ID = "entity_id"
STATUS_COLUMNS = ("event_time", "age_seconds", "status", "version")
Progress = Callable[[str], None]


@dataclass
class BatchFeatures:
    """Vectors for many entities: `table` has the ids (or the spine's columns, or with all entities
    the id and the typed key columns), one column per feature named as in a training set
    (`<view>__<column>`, so the model code that trained on one scores the other), and per view
    `<view>__event_time`, `__age_seconds`, `__status`, `__version` (with `__v<N>` after them, as
    after the values, when two versions of a view were asked for)."""

    table: pa.Table
    entity_type: str
    names: list[str]
    as_of: datetime
    sql: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def to_pandas(self):
        from featurehouse.offline.training_set import arrow_to_pandas

        return arrow_to_pandas(self.table)


@dataclass(frozen=True)
class _ViewRead:
    view: FeatureView
    columns: tuple[str, ...]  # the feature columns requested from this view, in request order
    suffix: str  # `__v<N>` when two versions of the view are read, else ''

    def output(self, column: str) -> str:
        """The training set's name for a feature column: the model trained on those names."""
        return f"{self.view.name}__{column}{self.suffix}"

    def meta(self, what: str) -> str:
        return f"{self.view.name}__{what}{self.suffix}"


def batch_features(warehouse: Warehouse, registry: Registry, entity_type: str, ids: Sequence[Any] | None = None,
                   spine: Any = None, names: Sequence[str] | None = None, model: str | None = None,
                   as_of: datetime | None = None, model_versions: dict[str, list[str]] | None = None,
                   all_entities: bool = False, progress: Progress | None = None,
                   authorize: Callable[[list[FeatureView]], None] | None = None) -> BatchFeatures:
    """The latest values of `names` (or `model`'s features of `entity_type`) for `ids` (keys as serving
    takes them: `42`, `card_id=1;merchant_id=7`), a `spine` (a DataFrame, Arrow table or Parquet/CSV
    path holding the entity's key columns) or, with `all_entities`, every entity the views hold.
    `authorize` is given the planned views before anything is read (it raises to deny)."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    plan = plan_request(registry, entity_type, list(names) if names else None, model, registry.active, model_versions)
    if authorize is not None:
        authorize([planned.view for planned in plan.views])
    reads = _view_reads(plan.views)
    entity = registry.entities[entity_type]
    now = as_of or utc_now()

    say("loading entity keys")
    t = time.perf_counter()
    spine_name = f"__fh_batch_{uuid.uuid4().hex[:12]}"
    if all_entities:
        spine_sql = _all_keys(len(reads), entity.keys)
        passthrough: list[str] = [ENTITY_ID, *entity.keys]
    else:
        keys_table, passthrough = _keys_table(registry, entity.name, entity.keys, ids, spine)
        warehouse.load_table(spine_name, keys_table)
        spine_sql = exp.select("*").from_(exp.table_(spine_name, quoted=True))
    timings["load_keys"] = time.perf_counter() - t
    try:
        sql = _query(spine_sql, passthrough, entity.keys, reads, as_of, warehouse.dialect)
        say(f"reading the latest values of {len(reads)} view(s)")
        t = time.perf_counter()
        raw = warehouse.fetch_arrow(sql)
        timings["query"] = time.perf_counter() - t
    finally:
        if not all_entities:
            try:
                warehouse.execute(f"DROP TABLE IF EXISTS {exp.table_(spine_name, quoted=True).sql(warehouse.dialect)}")
            except Exception:  # noqa: BLE001 - a temporary table; the session drops it anyway
                pass
    t = time.perf_counter()
    table = _judge(raw, passthrough, reads, now)
    timings["judge"] = time.perf_counter() - t
    return BatchFeatures(table, entity_type, list(plan.names), now, sql, time.perf_counter() - started, timings)


def _view_reads(planned) -> list[_ViewRead]:
    """The plan's views (resolved as serving resolves them) with their output column names."""
    per_view: dict[str, int] = {}
    for p in planned:
        per_view[p.view.name] = per_view.get(p.view.name, 0) + 1
    reads = []
    for p in planned:
        columns = tuple(FeatureRef.parse(name).column for name, _ in p.columns)
        suffix = f"__v{p.view.version}" if per_view[p.view.name] > 1 else ""
        read = _ViewRead(p.view, columns, suffix)
        clash = [c for c in columns if read.output(c) in {read.meta(w) for w in STATUS_COLUMNS}]
        if clash:
            raise InvalidRequest(f"feature '{p.view.name}.{clash[0]}' would share its batch column "
                                 f"'{read.output(clash[0])}' with the view's {clash[0]} column; rename the feature")
        reads.append(read)
    return reads


def _key(k: str) -> str:
    return f"__fh_key_{k}"


def _keys_table(registry: Registry, entity: str, keys: tuple[str, ...], ids, spine) -> tuple[pa.Table, list[str]]:
    """The keys to read, as text (the online key layout's form) in `__fh_key_<k>` columns, with a row
    number for their order; returns it and the columns to pass through (the ids, or the spine's own).
    Ids are checked as serving checks them: `abc` for a bigint key is an error, not a missing entity."""
    if (ids is None) == (spine is None):
        raise FeaturehouseError("give ids, a spine or all entities (exactly one)")
    if ids is not None:
        parsed = parse_ids(registry, entity, [str(i) for i in ids])
        arrays = {ENTITY_ID: pa.array([str(i) for i in ids], pa.string())}
        arrays.update({_key(k): pa.array([p[j] for p in parsed], pa.string()) for j, k in enumerate(keys)})
        arrays[ROW] = pa.array(range(len(parsed)), pa.int64())
        return pa.table(arrays), [ENTITY_ID]
    table = _read_spine(spine)
    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise InvalidSpine(f"the spine lacks key column(s) {', '.join(missing)} of entity '{entity}' "
                           f"(columns: {', '.join(table.column_names)})")
    clash = [c for c in table.column_names if c.startswith("__fh_")]
    if clash:
        raise InvalidSpine(f"spine column '{clash[0]}': names starting with __fh_ are featurehouse's own")
    passthrough = list(table.column_names)
    arrays = {c: table.column(c) for c in passthrough}
    arrays.update({_key(k): pc.cast(table.column(k), pa.string()) for k in keys})
    arrays[ROW] = pa.array(range(table.num_rows), pa.int64())
    return pa.table(arrays), passthrough


def _read_spine(spine: Any) -> pa.Table:
    if isinstance(spine, pa.Table):
        return spine
    if isinstance(spine, (str, Path)):
        path = Path(spine)
        if not path.is_file():
            raise InvalidSpine(f"no such file: {path}")
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        raise InvalidSpine(f"{path}: give a .parquet or .csv file")
    if hasattr(spine, "to_arrow"):
        return spine.to_arrow()
    try:
        return pa.Table.from_pandas(spine, preserve_index=False)
    except Exception as e:  # noqa: BLE001 - anything else is not a spine we can read
        raise InvalidSpine(f"cannot read a spine from a {type(spine).__name__}: {e}") from None


def _text(expression: exp.Expr) -> exp.Expr:
    return exp.cast(expression, exp.DataType.build("VARCHAR"))


def _all_keys(views: int, keys: tuple[str, ...]) -> exp.Select:
    """Every entity that has a row in any of the views' latest rows (the `__fh_l<i>` CTEs of `_query`):
    its keys as the views type them, the same as text (how they are matched), and an id as serving
    takes it; in key order."""
    parts = [exp.select(*[column(k) for k in keys], *[_text(column(k)).as_(_key(k), quoted=True) for k in keys])
             .from_(exp.table_(f"__fh_l{i}", quoted=True)) for i in range(views)]
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=True)
    if len(keys) == 1:
        ident: exp.Expr = column(_key(keys[0]))
    else:  # the `col=value;...` form (values holding ; = or % would need percent-encoding to be read back)
        pieces: list[exp.Expr] = []
        for i, k in enumerate(keys):
            pieces += ([exp.Literal.string(";")] if i else []) + [exp.Literal.string(f"{k}="), column(_key(k))]
        ident = exp.Concat(expressions=pieces)
    row = exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[exp.Ordered(this=column(k)) for k in keys]))
    return (exp.select(ident.as_(ENTITY_ID, quoted=True), *[column(k) for k in keys], *[column(_key(k)) for k in keys],
                       row.as_(ROW, quoted=True))
            .from_(union.subquery("__fh_keys")))


def _query(spine: exp.Select, passthrough: list[str], keys: tuple[str, ...], reads: list[_ViewRead],
           as_of: datetime | None, dialect: str) -> str:
    """Each view's latest rows (the sync's SQL, up to `as_of`) once, as a CTE, joined to the keys."""
    s = "s"
    # copy=False throughout: every piece is built here for this query (sqlglot copies by default)
    query = exp.select(column(ROW, s), *[column(c, s) for c in passthrough], copy=False) \
        .from_(spine.subquery(s, copy=False), copy=False)
    for i, r in enumerate(reads):
        alias = f"v{i}"
        on = exp.and_(*[exp.EQ(this=_text(column(k, alias)), expression=column(_key(k), s)) for k in keys], copy=False)
        query = query.join(exp.table_(f"__fh_l{i}", quoted=True).as_(alias, quoted=True), on=on, join_type="LEFT",
                           copy=False)
        query = query.select(column("__fh_event_time", alias).as_(f"__fh_et_{i}", quoted=True, copy=False), copy=False)
        query = query.select(*[column(c, alias).as_(f"__fh_v{i}_{j}", quoted=True, copy=False)
                               for j, c in enumerate(r.columns)], copy=False)
    for i, r in enumerate(reads):
        query = query.with_(exp.to_identifier(f"__fh_l{i}", quoted=True), as_=_latest(r.view, as_of, dialect), copy=False)
    return query.order_by(column(ROW, s), copy=False).sql(dialect, pretty=True)


def _latest(view: FeatureView, as_of: datetime | None, dialect: str) -> exp.Query:
    """The sync's latest-row query of a view, parsed back to nest it in the batch query."""
    query = sqlglot.parse_one(latest_values_sql(view, dialect, event_time_until=as_of), read=dialect)
    assert isinstance(query, exp.Query)  # latest_values_sql generates a SELECT
    return query


def _judge(raw: pa.Table, passthrough: list[str], reads: list[_ViewRead], now: datetime) -> pa.Table:
    """Each view's values judged by serving's rule: status and age per view, expired values withheld."""
    out: dict[str, pa.Array | pa.ChunkedArray] = {c: raw.column(c) for c in passthrough}
    now_us = _micros(now)
    for i, r in enumerate(reads):
        times = raw.column(f"__fh_et_{i}")
        micros = pc.cast(pc.cast(times, pa.timestamp("us")), pa.int64()).to_pylist()
        slo = r.view.freshness_slo.total_seconds() if r.view.freshness_slo else None
        ttl = r.view.ttl.total_seconds() if r.view.ttl else None
        ages = [None if m is None else (now_us - m) / 1e6 for m in micros]
        statuses = ["missing" if a is None else value_status(a, slo, ttl) for a in ages]
        withheld = pa.array([s == "expired" for s in statuses])
        for j, feature_column in enumerate(r.columns):
            values = raw.column(f"__fh_v{i}_{j}")
            # pc.if_else: pyarrow.compute makes its kernel wrappers at import, out of a type checker's sight
            out[r.output(feature_column)] = pc.call_function("if_else", [withheld, pa.nulls(len(values), values.type), values])
        out[r.meta("event_time")] = pc.cast(times, pa.timestamp("us"))
        out[r.meta("age_seconds")] = pa.array(ages, pa.float64())
        out[r.meta("status")] = pa.array(statuses, pa.string())
        out[r.meta("version")] = pa.array([r.view.version] * raw.num_rows, pa.int64())
    return pa.table(out)


def _micros(value: datetime) -> int:
    from featurehouse.online.codec import to_micros

    micros = to_micros(value)
    assert micros is not None
    return micros
