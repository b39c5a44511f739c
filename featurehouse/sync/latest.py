"""SQL for the latest row per entity of a view: what the online store should hold.

The ranking is the point-in-time join's (featurehouse/offline/point_in_time.py), so the online value
of every entity is exactly the one a training set would join at the end of time: parity by design.
Deduplication happens inside the warehouse; only one row per entity travels to the online store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping

import sqlglot
from sqlglot import exp

from featurehouse.offline.point_in_time import ViewRequest, column, served, tie_break, view_source
from featurehouse.registry.model import Feature, FeatureView, Relation

RANK = "__fh_rank"


def latest_values_sql(view: FeatureView, dialect: str, created_after: Mapping[Relation, datetime] | None = None,
                      event_time_from: datetime | None = None, event_time_until: datetime | None = None,
                      part: tuple[int, int] | None = None) -> str:
    """One row per entity key: keys, event_time, created_at (or NULL), then the feature columns, cast
    as they are served (HUGEINT as BIGINT, DECIMAL as DOUBLE: docs/semantics.md, "Types").

    With watermarks (`created_after`, one per source: the dbt relation and each landing table), only
    rows of a source whose created_at is after its watermark compete: rows ingested since the last
    sync (rows with a NULL created_at reach the store in full syncs only). A source without a
    watermark is read whole. Older rows already reached the store, and the write guard keeps a
    late-arriving older event from replacing a newer value.

    `part` (i, n), on DuckDB: only the entities whose key hashes to i modulo n. An entity's rows all fall
    in one part, so the n parts' results together are the whole result; each part's window holds a
    n-th of the rows (a sync of a large table reads it in parts: featurehouse/sync/batch.py).
    """
    req = ViewRequest(view, view.features, tuple(f.column for f in view.features))
    keys = [column(k) for k in view.entity.keys]
    order = [exp.Ordered(this=column(view.event_time), desc=True, nulls_first=False)] + tie_break(req, None, dialect)
    rank = exp.Window(this=exp.RowNumber(), partition_by=keys, order=exp.Order(expressions=order))
    created = column(view.created_at) if view.created_at else exp.cast(exp.Null(), "TIMESTAMP")
    conditions: list[exp.Expr] = [exp.Not(this=exp.Is(this=column(view.event_time), expression=exp.Null()))]
    conditions += [exp.Not(this=exp.Is(this=k.copy(), expression=exp.Null())) for k in keys]
    if event_time_from is not None:  # a backfill of a time range replays only its rows
        conditions.append(exp.GTE(this=column(view.event_time), expression=_timestamp(event_time_from)))
    if event_time_until is not None:
        conditions.append(exp.LTE(this=column(view.event_time), expression=_timestamp(event_time_until)))
    if part is not None:
        conditions.append(_in_part(keys, part, dialect))
    ranked = (
        exp.select(*keys, column(view.event_time).as_("__fh_event_time", quoted=True),
                   created.as_("__fh_created_at", quoted=True))
        .select(*[_served(f, dialect) for f in view.features])
        .select(rank.as_(RANK, quoted=True))
        .from_(view_source(view, "__fh_src", _since(view, created_after)))
        .where(exp.and_(*conditions))
    )
    outer = (
        exp.select(*[column(k) for k in view.entity.keys], column("__fh_event_time"), column("__fh_created_at"))
        .select(*[column(f.column) for f in view.features])
        .from_(ranked.subquery("__fh_ranked"))
        .where(exp.EQ(this=column(RANK), expression=exp.Literal.number(1)))
    )
    return outer.sql(dialect, pretty=True)


def _in_part(keys: list[exp.Column], part: tuple[int, int], dialect: str) -> exp.Expr:
    index, count = part
    if dialect != "duckdb":
        raise ValueError(f"latest values are read in parts on DuckDB only, not {dialect}")
    if not 0 <= index < count:
        raise ValueError(f"part {index} of {count}")
    hashed = exp.Anonymous(this="hash", expressions=[k.copy() for k in keys])
    return exp.EQ(this=exp.Mod(this=hashed, expression=exp.Literal.number(count)),
                  expression=exp.Literal.number(index))


def _served(feature: Feature, dialect: str) -> exp.Expr:
    value = served(feature, None, dialect)
    return value if isinstance(value, exp.Column) else value.as_(feature.column, quoted=True)


def latest_row_sql(view: FeatureView, key: tuple, dialect: str) -> str:
    """The latest row of one entity (for showing and checking a single vector)."""
    latest = sqlglot.parse_one(latest_values_sql(view, dialect), read=dialect)
    assert isinstance(latest, exp.Query)  # latest_values_sql generates a SELECT
    match = exp.and_(*[exp.EQ(this=column(k), expression=_literal(v)) for k, v in zip(view.entity.keys, key)])
    return exp.select("*").from_(latest.subquery("__fh_latest")).where(match).sql(dialect)


def _literal(value) -> exp.Expr:
    return exp.Literal.number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else exp.Literal.string(str(value))


def _since(view: FeatureView, created_after: Mapping[Relation, datetime] | None) -> dict[Relation, exp.Expr]:
    if not view.created_at or not created_after:
        return {}
    return {source: exp.GT(this=column(view.created_at), expression=_timestamp(bound))
            for source, bound in created_after.items()}


def max_created_at_sql(view: FeatureView, source: Relation, dialect: str) -> str:
    """The newest ingestion time in one of the view's sources (its relation or a landing table)."""
    assert view.created_at is not None, f"{view.versioned_name} has no created_at column"
    table = exp.table_(source.identifier, db=source.schema, catalog=source.database, quoted=True)
    return exp.select(exp.Max(this=column(view.created_at))).from_(table).sql(dialect)


def _timestamp(value: datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
