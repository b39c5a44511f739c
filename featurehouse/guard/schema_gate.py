"""The schema gate (`featurehouse check`): published feature versions must keep their schema.

A published view@version (synced, backfilled, promoted or trained on) has fixed columns, order and
types: the online store holds its values as arrays in column order, and models were trained on those
types. The project's *current* SQL is compiled by dbt and described by the warehouse without being
built, so the gate runs in CI before `dbt build` deploys anything. Metadata (owner, SLO, description)
is not part of a schema and may change freely.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

from featurehouse import types
from featurehouse.catalog import Catalog
from featurehouse.guard.logic_gate import LogicChange, logic_changes
from featurehouse.offline.published import PublishedSchema, read_published, view_schema
from featurehouse.project import DbtProject
from featurehouse.registry.model import FeatureView, Registry


def normalize_type(data_type: str | None) -> str:
    """The canonical spelling of a type (featurehouse.types): 'int8' and 'BIGINT' are both 'bigint'."""
    return types.canonical(data_type)


@dataclass(frozen=True)
class SchemaChange:
    view: str
    version: int
    kind: str  # removed_column | added_column | type_changed | reordered | version_removed
    column: str | None
    old: str | None
    new: str | None
    bump_to: int

    @property
    def message(self) -> str:
        where = f"{self.view}@{self.version}"
        fix = (f"declare {self.view} version {self.bump_to} in a model of its own, backfill it and promote it "
               f"(`featurehouse backfill {self.view} --version {self.bump_to}`)")
        if self.kind == "type_changed":
            return f"{where}: column '{self.column}' changed type {self.old} -> {self.new}; {fix}"
        if self.kind == "removed_column":
            return f"{where}: column '{self.column}' ({self.old}) was removed; {fix}"
        if self.kind == "added_column":
            return (f"{where}: column '{self.column}' ({self.new}) was added to a published version "
                    f"(online values are stored in column order); {fix}")
        if self.kind == "reordered":
            return f"{where}: columns were reordered ({self.old} -> {self.new}); {fix}"
        return (f"{where} is published but no longer declared (now: {self.new}), and serving or its relation "
                f"depend on it; keep {where} in its model and declare the new version in a model of its own")


@dataclass
class GateRow:
    view: str
    version: int
    status: str  # ok | new | changed | retired | removed
    detail: str = ""


@dataclass
class GateResult:
    rows: list[GateRow] = field(default_factory=list)
    changes: list[SchemaChange] = field(default_factory=list)
    logic: list[LogicChange] = field(default_factory=list)  # SQL changed under a published version
    access: list = field(default_factory=list)  # access.policy.Decision: a model's team may not read a feature it uses
    access_warnings: list[str] = field(default_factory=list)  # access warnings: no teams declared, idle or expired grants

    @property
    def ok(self) -> bool:
        return not self.changes and all(change.ok for change in self.logic) and not self.access


def compare(published: dict[tuple[str, int], PublishedSchema], current: Mapping[tuple[str, int], Mapping[str, str | None]],
            active: dict[str, int] | None = None, current_ids: dict[tuple[str, int], str] | None = None) -> GateResult:
    """Published schemas against current ones -> rows for every view@version, and the breaking changes.

    A published version that is no longer declared fails when it is the promoted one, or when the dbt
    model that built it now declares another version in its place (its relation would be rebuilt)."""
    result = GateResult()
    versions: dict[str, set[int]] = {}
    for view, version in list(published) + list(current):
        versions.setdefault(view, set()).add(version)
    for (view, version), cur in sorted(current.items()):
        pub = published.get((view, version))
        if pub is None:
            result.rows.append(GateRow(view, version, "new", "not published yet: any schema passes"))
            continue
        bump = max(versions[view]) + 1
        changes = _diff(view, version, pub.schema, cur, bump)
        result.changes += changes
        result.rows.append(GateRow(view, version, "changed" if changes else "ok",
                                   "; ".join(c.message.split(": ", 1)[1].split(";")[0] for c in changes)
                                   or f"published by {pub.published_by} {pub.published_at:%Y-%m-%d %H:%M}"))
    for (view, version), pub in sorted(published.items()):
        if (view, version) in current:
            continue
        declared = sorted(v for (n, v) in current if n == view)
        node = pub.transform_ref.rpartition("@")[0]
        in_place = [v for v in declared if (current_ids or {}).get((view, v)) == node]
        if declared and ((active or {}).get(view) == version or in_place):
            change = SchemaChange(view, version, "version_removed", None, None,
                                  ", ".join(f"{view}@{v}" for v in in_place or declared), max(versions[view]))
            result.changes.append(change)
            result.rows.append(GateRow(view, version, "removed", change.message.split(" is ", 1)[1]))
        else:
            result.rows.append(GateRow(view, version, "retired", "published, no longer declared (not active)"))
    return result


def _diff(view: str, version: int, old: Mapping[str, str | None], new: Mapping[str, str | None], bump: int
          ) -> list[SchemaChange]:
    changes = []
    for col, t in old.items():
        if col not in new:
            changes.append(SchemaChange(view, version, "removed_column", col, t, None, bump))
        elif not types.same_type(t, new[col], exact=True):
            changes.append(SchemaChange(view, version, "type_changed", col, t, new[col], bump))
    for col, t in new.items():
        if col not in old:
            changes.append(SchemaChange(view, version, "added_column", col, None, t, bump))
    if not changes and list(old) != list(new):
        changes.append(SchemaChange(view, version, "reordered", None, ", ".join(old), ", ".join(new), bump))
    return changes


def current_schemas(registry: Registry, project: DbtProject | None, describe_query: Callable[[str], dict[str, str]],
                    release: Callable[[], None] = lambda: None, compile_sql: bool = True
                    ) -> dict[tuple[str, int], Mapping[str, str | None]]:
    """Each declared view@version's feature columns and types, from its *current* SQL.

    With `compile_sql`, dbt compiles the feature views and the warehouse describes the compiled
    queries (nothing is built); declared `data_type`s in YAML win, as in the registry. Without it,
    the registry's view of the built relations is used. `release` frees the warehouse for dbt
    (DuckDB allows one writer process) before it compiles.
    """
    views = list(registry.views.values())
    if not compile_sql or project is None:
        return {(v.name, v.version): view_schema(v) for v in views}
    release()
    paths = sorted({v.original_file_path for v in views if v.original_file_path})
    with contextlib.redirect_stdout(io.StringIO()):  # dbt compile prints a lone node's SQL even when quiet
        result = project.run_dbt(["--log-level", "none", "compile", "--select", *[f"path:{p}" for p in paths]])
    compiled = {r.node.unique_id: r.node for r in result.result.results}
    out: dict[tuple[str, int], Mapping[str, str | None]] = {}
    for view in views:
        node = compiled.get(view.unique_id)
        if node is None or not getattr(node, "compiled_code", None):
            out[(view.name, view.version)] = view_schema(view)
            continue
        described = describe_query(node.compiled_code)
        declared = {name: col.data_type for name, col in (node.columns or {}).items() if col.data_type}
        out[(view.name, view.version)] = _feature_schema(view, described, declared)
    return out


def _feature_schema(view: FeatureView, described: dict[str, str], declared: dict[str, str]) -> dict[str, str]:
    """The type each column will have: the declared one while the SQL still yields the same logical type
    (YAML says integer, DuckDB says BIGINT), else what the SQL yields (YAML without an enforced contract
    does not stop a cast to varchar, nor a SUM that yields HUGEINT)."""
    skip = set(view.entity.keys) | {view.event_time, view.created_at}
    out = {}
    for column, described_type in described.items():
        if column in skip:
            continue
        declared_type = declared.get(column)
        same = declared_type and types.same_type(declared_type, described_type)
        out[column] = declared_type if same else described_type
    return out


def check(registry: Registry, catalog: Catalog, current: Mapping[tuple[str, int], Mapping[str, str | None]]
          ) -> GateResult:
    """Published schemas against the current SQL's (`current_schemas`), and published logic against the
    current SQL."""
    published = read_published(catalog)
    ids = {(v.name, v.version): v.unique_id for v in registry.views.values()}
    result = compare(published, dict(current), dict(registry.active), ids)
    result.logic = logic_changes(registry, published)
    rows = {(r.view, r.version): r for r in result.rows}
    for change in result.logic:
        row = rows.get((change.view, change.version))
        if row is not None and row.status == "ok":
            row.status = "restated" if change.ok else "changed"
            row.detail = change.message.split(": ", 1)[1]
    return result
