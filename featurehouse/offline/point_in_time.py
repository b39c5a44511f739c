"""Point-in-time join SQL, generated with sqlglot for each engine.

The semantics are those of docs/semantics.md. Two plans produce them:
- `asof`: DuckDB's ASOF LEFT JOIN over a view deduplicated to one row per (key, event_time), with the
  TTL applied around it. It allows a single inequality, so "as known at" uses the window plan.
- `window`: a portable join + ROW_NUMBER() plan, for PostgreSQL, Spark and every other warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Mapping

from sqlglot import exp

from featurehouse.registry.model import Feature, FeatureView, Relation
from featurehouse.types import Family, family, serving_cast

ROW_ID = "__fh_row"
SPINE = "__fh_spine"
EVENT_TIME = "__fh_et"
RANK = "__fh_rank"


@dataclass(frozen=True)
class ViewRequest:
    """The features wanted from one view at one version, and the output column name of each."""

    view: FeatureView
    features: tuple[Feature, ...]
    output_names: tuple[str, ...]
    as_known_at: bool = False


@dataclass(frozen=True)
class PointInTimeQuery:
    """One training-set query: a spine relation (with a row id column) joined as of its timestamp to views."""

    spine: exp.Expr  # a table or subquery holding the spine and its ROW_ID column
    spine_columns: tuple[str, ...]  # passed through to the output, in order
    timestamp: str
    requests: tuple[ViewRequest, ...] = field(default_factory=tuple)
    keep_order: bool = True
    include_event_times: bool = False

    def plan(self, dialect: str) -> str:
        """`asof` on DuckDB unless a view is read "as known at"; `window` elsewhere."""
        if dialect == "duckdb" and not any(r.as_known_at for r in self.requests):
            return "asof"
        return "window"

    def to_expression(self, dialect: str, plan: str | None = None) -> exp.Select:
        plan = plan or self.plan(dialect)
        if plan == "asof" and any(r.as_known_at for r in self.requests):
            raise ValueError("the asof plan cannot read a view 'as known at'; use the window plan")
        s = "s"
        spine_cte = exp.select(*[column(c) for c in self.spine_columns], column(ROW_ID)).from_(self.spine)
        query = exp.select(*[column(c, s) for c in self.spine_columns]).from_(_table(SPINE).as_(s, quoted=True))
        ctes = [(SPINE, spine_cte)]
        for i, req in enumerate(self.requests):
            alias, cte_name = f"v{i}", f"__fh_v{i}"
            if plan == "asof":
                ctes.append((cte_name, _latest_per_event_time(req, dialect)))
                query = query.join(
                    _table(cte_name).as_(alias, quoted=True),
                    on=exp.and_(*_key_match(req, s, alias),
                                exp.LTE(this=column(EVENT_TIME, alias), expression=self._as_of(req, s))),
                    join_type="ASOF LEFT",
                    copy=False,  # the query is ours: copying it at every step made 500 features quadratic
                )
                in_ttl = self._ttl_condition(req, column(EVENT_TIME, alias), s)
            else:
                ctes.append((cte_name, self._ranked_matches(req, s, dialect)))
                query = query.join(
                    _table(cte_name).as_(alias, quoted=True),
                    on=exp.and_(exp.EQ(this=column(ROW_ID, alias), expression=column(ROW_ID, s)),
                                exp.EQ(this=column(RANK, alias), expression=exp.Literal.number(1))),
                    join_type="LEFT",
                    copy=False,
                )
                in_ttl = None  # the window plan filters by TTL inside the join
            for j, (_feature, out) in enumerate(zip(req.features, req.output_names)):
                value = column(f"__fh_f{j}", alias)
                if in_ttl is not None:
                    value = exp.Case(ifs=[exp.If(this=in_ttl.copy(), true=value)])
                query = query.select(value.as_(out, quoted=True), copy=False)
            if self.include_event_times:
                value = column(EVENT_TIME, alias)
                if in_ttl is not None:
                    value = exp.Case(ifs=[exp.If(this=in_ttl.copy(), true=value)])
                query = query.select(value.as_(f"{req.view.name}__event_time", quoted=True), copy=False)
        if self.keep_order:
            query = query.order_by(column(ROW_ID, s), copy=False)
        for name, body in ctes:
            query = query.with_(exp.to_identifier(name, quoted=True), as_=body, copy=False)
        return query

    def to_sql(self, dialect: str, plan: str | None = None, pretty: bool = True) -> str:
        return self.to_expression(dialect, plan).sql(dialect, pretty=pretty)

    # -- pieces -------------------------------------------------------------------------------

    def _as_of(self, req: ViewRequest, s: str) -> exp.Expr:
        """The latest event time a spine row may see from this view: as_of - serving_delay."""
        ts = column(self.timestamp, s)
        if req.view.serving_delay:
            return exp.Sub(this=ts, expression=_interval(req.view.serving_delay))
        return ts

    def _ttl_condition(self, req: ViewRequest, event_time: exp.Expr, s: str) -> exp.Expr | None:
        if req.view.ttl is None:
            return None
        lower = exp.Sub(this=column(self.timestamp, s), expression=_interval(req.view.ttl))
        return exp.GTE(this=event_time, expression=lower)

    def _ranked_matches(self, req: ViewRequest, s: str, dialect: str) -> exp.Select:
        """Every view row a spine row may see, ranked newest first (the portable plan)."""
        v, f = req.view, "f"
        conditions = [*_key_match(req, s, f), exp.LTE(this=column(v.event_time, f), expression=self._as_of(req, s))]
        ttl = self._ttl_condition(req, column(v.event_time, f), s)
        if ttl is not None:
            conditions.append(ttl)
        if req.as_known_at:
            assert v.created_at is not None  # plan_requests refuses 'as known at' for views without created_at
            conditions.append(exp.LTE(this=column(v.created_at, f), expression=column(self.timestamp, s)))
        order = [exp.Ordered(this=column(v.event_time, f), desc=True, nulls_first=False)] + tie_break(req, f, dialect)
        rank = exp.Window(
            this=exp.RowNumber(),
            partition_by=[column(ROW_ID, s)],
            order=exp.Order(expressions=order),
        )
        return (
            exp.select(column(ROW_ID, s), column(v.event_time, f).as_(EVENT_TIME, quoted=True))
            .select(*[served(ft, f, dialect).as_(f"__fh_f{j}", quoted=True) for j, ft in enumerate(req.features)])
            .select(rank.as_(RANK, quoted=True))
            .from_(_table(SPINE).as_(s, quoted=True))
            .join(view_source(v, f), on=exp.and_(*conditions), join_type="INNER")
        )


def _latest_per_event_time(req: ViewRequest, dialect: str) -> exp.Select:
    """The view reduced to one row per (key, event_time): the tie-break of docs/semantics.md."""
    v = req.view
    order = tie_break(req, None, dialect)
    rank = exp.Window(
        this=exp.RowNumber(),
        partition_by=[column(k) for k in v.entity.keys] + [column(v.event_time)],
        order=exp.Order(expressions=order),
    )
    select = (
        exp.select(*[column(k) for k in v.entity.keys], column(v.event_time).as_(EVENT_TIME, quoted=True))
        .select(*[served(ft, None, dialect).as_(f"__fh_f{j}", quoted=True) for j, ft in enumerate(req.features)])
        .from_(view_source(v, "__fh_src"))
        .where(exp.Not(this=exp.Is(this=column(v.event_time), expression=exp.Null())))
    )
    if order:
        select = select.qualify(exp.EQ(this=rank, expression=exp.Literal.number(1)))
    return select


def tie_break(req: ViewRequest, table: str | None, dialect: str) -> list[exp.Ordered]:
    """Equal event times: greatest created_at, then greatest values of the view's feature columns in order."""
    v = req.view
    cols = ([v.created_at] if v.created_at else []) + list(v.feature_columns)
    return [exp.Ordered(this=_sortable(column(c, table), v, c, dialect), desc=True, nulls_first=False) for c in cols]


def _sortable(column: exp.Expr, view: FeatureView, name: str, dialect: str) -> exp.Expr:
    """Strings compare by code point on every engine: PostgreSQL's default collation would not, nor would a
    Spark (4+) column declared with a collation of its own (UTF8_LCASE, a locale). DuckDB compares bytewise,
    as Spark's default UTF8_BINARY does (UTF-8 bytes sort as code points)."""
    if dialect not in ("postgres", "spark"):
        return column
    dtype = next((f.data_type for f in view.features if f.column == name), None)
    if family(dtype, dialect) is Family.STRING:
        collation = exp.to_identifier("C", quoted=True) if dialect == "postgres" else exp.var("UTF8_BINARY")
        return exp.Collate(this=column, expression=collation)
    return column


def served(feature: Feature, table: str | None, dialect: str) -> exp.Expr:
    """A feature column as it is trained on and served: HUGEINT as BIGINT, DECIMAL as DOUBLE
    (featurehouse.types.serving_cast; docs/semantics.md, "Types"). Rankings use the raw column."""
    return serving_cast(column(feature.column, table), feature.data_type, dialect)


def _key_match(req: ViewRequest, s: str, other: str) -> list[exp.Expr]:
    return [exp.EQ(this=column(k, s), expression=column(k, other)) for k in req.view.entity.keys]


def view_source(view: FeatureView, alias: str, filters: Mapping[Relation, exp.Expr] | None = None) -> exp.Expr:
    """The view's rows: its dbt relation, plus its stream landing tables when rows were pushed.

    `filters` restricts each source on its own (a sync reads each source from its own watermark)."""
    if not view.extra_relations and not filters:
        return relation_table(view).as_(alias, quoted=True)
    cols = [*view.entity.keys, view.event_time] + ([view.created_at] if view.created_at else []) + list(view.feature_columns)
    parts = []
    for r in (view.relation, *view.extra_relations):
        table = exp.table_(r.identifier, db=r.schema, catalog=r.database, quoted=True)
        part = exp.select(*[column(c) for c in cols]).from_(table)
        condition = (filters or {}).get(r)
        parts.append(part if condition is None else part.where(condition.copy()))
    union: exp.Expr = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    return exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))


def view_sources(view: FeatureView) -> tuple[Relation, ...]:
    """Where a view's rows live: its dbt relation first, then its stream landing tables."""
    return (view.relation, *view.extra_relations)


def relation_table(view: FeatureView) -> exp.Table:
    r = view.relation
    return exp.table_(r.identifier, db=r.schema, catalog=r.database, quoted=True)


def _table(name: str) -> exp.Table:
    return exp.table_(name, quoted=True)


def column(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _interval(value: timedelta) -> exp.Interval:
    micros = round(value.total_seconds() * 1_000_000)
    if micros % 1_000_000 == 0:
        return exp.Interval(this=exp.Literal.string(str(micros // 1_000_000)), unit=exp.var("SECOND"))
    return exp.Interval(this=exp.Literal.string(str(micros)), unit=exp.var("MICROSECOND"))
