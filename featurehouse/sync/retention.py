"""Retention of featurehouse's own offline copies (`featurehouse retention`).

A view's `meta.featurehouse.retention` (e.g. `400d`), or the project's `vars.featurehouse.retention`
for views that do not declare one, bounds how long featurehouse keeps what it copied of the view:

- its stream landing table (the pushed rows, featurehouse/stream/log.py): rows whose event time is
  older than now - retention;
- featurehouse_served_values (the landed sample of served vectors): the view's features' values
  served before then;
- featurehouse_training_sets: a training set recorded before then that read the view keeps its record
  (features at their versions, types, dbt checksums, spine fingerprint, row count, plan) but loses the
  distribution profiles of the view's features, which may quote values (a categorical profile keeps
  its most common values). The profile JSON says which ones retention removed, and when.

`vars.featurehouse.audit_retention` bounds featurehouse_audit: events older than it are deleted.

Never touched: the view's own relation (the dbt model), any other dbt model, seed, snapshot or source,
and the user's upstream data. A view without a retention (and no project default) keeps everything.
Online values are bounded by the view's TTL instead (the store's retention pass, online/store.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from sqlglot import exp

from featurehouse.catalog import AUDIT, SERVED_VALUES, TRAINING_SETS, Catalog, TableSpec
from featurehouse.catalog.catalog import CatalogWarehouse
from featurehouse.registry.model import FeatureView, Registry, Relation


@dataclass
class ViewRetention:
    """What retention removed (or, in a dry run, would remove) of one view@version's offline copies."""

    view: str  # view@N
    retention: timedelta
    cutoff: datetime  # copies older than this went (UTC)
    landing_rows: int = 0  # rows of its stream landing table, by event time
    served_values: int = 0  # rows of featurehouse_served_values, by served_at
    profiles_trimmed: int = 0  # training sets recorded before the cutoff that lost the view's profiles

    @property
    def removed(self) -> int:
        return self.landing_rows + self.served_values + self.profiles_trimmed


@dataclass
class RetentionResult:
    now: datetime
    dry_run: bool = False
    views: dict[str, ViewRetention] = field(default_factory=dict)  # view@N -> counts, views with a retention only
    audit_retention: timedelta | None = None
    audit_cutoff: datetime | None = None
    audit_rows: int = 0  # featurehouse_audit events older than audit_cutoff

    @property
    def removed_anything(self) -> bool:
        return self.audit_rows > 0 or any(v.removed for v in self.views.values())

    def summary(self) -> str:
        parts = [f"{v.view}: {v.landing_rows} landing row(s), {v.served_values} served value(s), "
                 f"{v.profiles_trimmed} training-set profile(s)" for v in self.views.values() if v.removed]
        if self.audit_rows:
            parts.append(f"{self.audit_rows} audit event(s)")
        return "; ".join(parts) or "nothing"


class RetentionReport(dict[str, int]):
    """The store's retention pass: online values removed per view@N (past the view's TTL), as a dict as
    before, and `offline`, what offline_retention removed."""

    def __init__(self, online: Mapping[str, int], offline: RetentionResult):
        super().__init__(online)
        self.offline = offline

    @property
    def online(self) -> dict[str, int]:
        return dict(self)


def offline_retention(warehouse: CatalogWarehouse, catalog: Catalog, registry: Registry, now: datetime,
                      default: timedelta | None = None, audit_retention: timedelta | None = None,
                      dry_run: bool = False) -> RetentionResult:
    """Delete featurehouse's offline copies older than each view's retention (`default` for views
    without one) and audit events older than `audit_retention`; `dry_run` counts and deletes nothing.
    `now` is UTC (naive, or aware and converted)."""
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    result = RetentionResult(now, dry_run, audit_retention=audit_retention)
    kept = _protected(registry)
    trims: list[tuple[FeatureView, ViewRetention]] = []
    for key in sorted(registry.views):
        view = registry.views[key]
        period = view.retention or default
        if not period:
            continue
        counts = result.views[view.versioned_name] = ViewRetention(view.versioned_name, period, now - period)
        for relation in _landing_tables(warehouse, view, catalog, kept):
            counts.landing_rows += _remove(warehouse, _table(relation), _older(view.event_time), [counts.cutoff],
                                           dry_run)
        counts.served_values = _remove_served(catalog, view, counts.cutoff, dry_run)
        trims.append((view, counts))
    if trims:
        _trim_profiles(catalog, trims, now, dry_run)
    if audit_retention:
        result.audit_cutoff = now - audit_retention
        if catalog.exists(AUDIT):
            result.audit_rows = _remove(warehouse, _catalog_table(catalog, AUDIT), _older("at"),
                                        [result.audit_cutoff], dry_run)
    return result


# -- what is whose ---------------------------------------------------------------------------------


def _protected(registry: Registry) -> set[tuple[str | None, ...]]:
    """Relations retention never deletes from: every view's own relation and every dbt model, seed,
    snapshot and source the project knows (by their parts, compared without case)."""
    relations = [v.relation for v in registry.views.values()] + list(registry.relations.values())
    return {_parts(r) for r in relations}


def _parts(relation: Relation) -> tuple[str | None, ...]:
    return tuple(p.lower() if p else None for p in (relation.database, relation.schema, relation.identifier))


def _landing_tables(warehouse: CatalogWarehouse, view: FeatureView, catalog: Catalog,
                    protected: set[tuple[str | None, ...]]) -> list[Relation]:
    """The view's stream landing table(s): those attached to the view (`extra_relations`) and the one
    in the catalog's schema, if it exists and has the view's event time column. Never a relation the
    project builds or reads."""
    from featurehouse.stream.log import landing_relation

    found: list[Relation] = []
    for relation in (*view.extra_relations, landing_relation(view, catalog.schema)):
        if relation in found or _parts(relation) in protected or _parts(relation) == _parts(view.relation):
            continue
        try:
            columns = warehouse.describe(relation) or {}
        except Exception:  # noqa: BLE001 - a table that cannot be read holds nothing retention can delete
            continue
        if view.event_time in columns:
            found.append(relation)
    return found


# -- counting and deleting -------------------------------------------------------------------------


def _table(relation: Relation) -> exp.Table:
    return exp.table_(relation.identifier, db=relation.schema, catalog=relation.database, quoted=True)


def _catalog_table(catalog: Catalog, spec: TableSpec) -> exp.Table:
    return exp.table_(spec.name, db=catalog.schema, quoted=True)


def _older(column: str) -> exp.Expr:
    """`column` < the cutoff (a placeholder)."""
    return exp.LT(this=exp.column(column, quoted=True), expression=exp.Placeholder())


def _count(warehouse: CatalogWarehouse, table: exp.Table, condition: exp.Expr, params: Sequence[Any]) -> int:
    query = exp.select(exp.Count(this=exp.Star()).as_("n", quoted=True)).from_(table).where(condition)
    rows = warehouse.fetch_arrow(query.sql(warehouse.dialect), tuple(params))
    return int(rows.column(0)[0].as_py() or 0) if rows.num_rows else 0


def _remove(warehouse: CatalogWarehouse, table: exp.Table, condition: exp.Expr, params: Sequence[Any],
            dry_run: bool) -> int:
    """Count the matching rows and (unless a dry run) delete them, together."""
    if dry_run:
        return _count(warehouse, table, condition, params)
    with warehouse.transaction():
        n = _count(warehouse, table, condition, params)
        if n:
            warehouse.execute_dml(exp.delete(table.copy(), where=condition.copy()), tuple(params))
    return n


def _remove_served(catalog: Catalog, view: FeatureView, cutoff: datetime, dry_run: bool) -> int:
    """The view's features' rows of featurehouse_served_values (feature `view.column`, at its version)
    served before the cutoff."""
    if not catalog.exists(SERVED_VALUES):
        return 0
    names = [f"{view.name}.{c}" for c in view.feature_columns]
    condition = exp.and_(
        exp.column("feature", quoted=True).isin(*[exp.Placeholder() for _ in names]),
        exp.EQ(this=exp.column("version", quoted=True), expression=exp.Placeholder()),
        _older("served_at"))
    return _remove(catalog.warehouse, _catalog_table(catalog, SERVED_VALUES), condition,
                   [*names, view.version, cutoff], dry_run)


# -- training-set profiles -------------------------------------------------------------------------


def _feature_of(versioned: str, view: FeatureView) -> bool:
    """Whether a training set's feature name (`view.column@N`, offline/lineage.py) is of this view@version."""
    base, _, version = versioned.rpartition("@")
    name, _, column = base.partition(".")
    return name == view.name and version == str(view.version) and column in view.feature_columns


def _trim_profiles(catalog: Catalog, trims: list[tuple[FeatureView, ViewRetention]], now: datetime,
                   dry_run: bool) -> None:
    """Remove, from each training set recorded before a view's cutoff, the profiles of that view's
    features: the record (features, schemas, transforms, fingerprint, row count) stays; the profile
    JSON notes what retention removed, and when."""
    if not catalog.exists(TRAINING_SETS):
        return
    newest = max(counts.cutoff for _, counts in trims)
    rows = catalog.select(TRAINING_SETS, columns=("training_set_id", "created_at", "profile"),
                          condition=_older("created_at"), condition_params=[newest]).to_pylist()
    for row in rows:
        if not row["profile"] or row["created_at"] is None:
            continue
        extra = json.loads(row["profile"])
        profile = extra.get("profile") or {}
        removed: list[str] = []
        for view, counts in trims:
            if row["created_at"] >= counts.cutoff:
                continue
            doomed = [f for f in profile if _feature_of(f, view)]
            if doomed:
                counts.profiles_trimmed += 1
                removed += doomed
        if not removed or dry_run:
            continue
        for name in removed:
            del profile[name]
        extra["profile"] = profile
        extra["removed_by_retention"] = {**(extra.get("removed_by_retention") or {}),
                                         **{name: now.isoformat(sep=" ") for name in removed}}
        catalog.update(TRAINING_SETS, {"profile": json.dumps(extra)}, {"training_set_id": row["training_set_id"]})


# -- online values past their TTL, counted (a dry run of OnlineStore.expire_older_than) ---------------


def count_online_past(client: Any, cutoffs: Mapping[str, int], pattern: str = "fh:{*") -> dict[str, int]:
    """Per value field (`view@N`), how many entities hold a value whose event time (micros) is before
    its cutoff: what the store's retention pass would remove. Deletes nothing."""
    from typing import cast

    from featurehouse.online.keys import time_field

    def tfield(name: str) -> str:
        view, _, version = name.rpartition("@")
        return time_field(view, int(version))

    found = {f: 0 for f in cutoffs}
    fields = list(cutoffs)
    for key in client.scan_iter(match=pattern, count=1000):
        times = cast("list[bytes | None]", client.hmget(key, [tfield(f) for f in fields]))
        for name, stamp in zip(fields, times):
            if stamp is not None and int(stamp.split(b":")[0]) < cutoffs[name]:
                found[name] += 1
    return found


__all__ = ["RetentionReport", "RetentionResult", "ViewRetention", "count_online_past", "offline_retention"]
