"""Random small dbt projects, written from scratch, and the oracle of what serving must answer for them.

A project has one entity type (`acct`) and one or two feature views. Each view picks its feature
columns and types (bigint, hugeint, decimal, double with NaN, varchar, boolean, date, timestamp,
NULLs anywhere), lists them in YAML in another order than its SELECT or not at all (typed by the
built relation), and may have a second version (a dbt versioned model). Rows are the raw table
`raw_<view>_v<N>`, one table a view version; event times are hours to weeks old, far from any TTL or
SLO boundary, so a judgement cannot flip while a test runs.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
KEYS = list(range(0, 7))  # key 0 never has a row: always missing
AGES_H = (0.5, 5.0, 30.0, 24.0 * 5, 24.0 * 40)
TTLS_H = (None, 24.0, 24.0 * 30)
SLOS_H = (None, 2.0, 24.0 * 3)


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str  # bigint | hugeint | decimal | double | varchar | boolean | date | timestamp


@dataclass
class ViewSpec:
    name: str
    features: list[FeatureSpec]
    yaml_order: list[str] | None  # None: no YAML columns (typed by the built relation)
    versions: int
    created_at: bool
    ttl_h: float | None
    slo_h: float | None
    rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # version -> raw rows


def sql_type(kind: str, engine: str) -> str:
    return {"bigint": "bigint", "hugeint": "hugeint" if engine == "duckdb" else "numeric(38,0)",
            "decimal": "decimal(10,2)", "double": "double" if engine == "duckdb" else "double precision",
            "varchar": "varchar", "boolean": "boolean", "date": "date", "timestamp": "timestamp"}[kind]


def served_value(kind: str, engine: str, value: Any) -> Any:
    """What every path must hand out for a raw value (docs/semantics.md, "Types")."""
    if value is None:
        return None
    if kind == "hugeint":
        return int(value) if engine == "duckdb" else float(value)  # numeric is served as a double
    if kind == "decimal":
        return float(value)
    return value


_TEXT = st.text(alphabet=string.ascii_letters + "éß日本 ;=%|{}", max_size=6)
_RAW = {
    "bigint": st.integers(-2**63, 2**63 - 1),
    "hugeint": st.integers(-2**62, 2**62),
    "decimal": st.integers(-400_000, 400_000).map(lambda n: n / 4),
    "double": st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64), st.just(math.nan)),
    "varchar": _TEXT,
    "boolean": st.booleans(),
    "date": st.dates(date(2000, 1, 1), date(2030, 12, 31)),
    "timestamp": st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1)).map(lambda t: t.replace(microsecond=t.microsecond)),
}
_ARROW = {"bigint": pa.int64(), "hugeint": pa.int64(), "decimal": pa.float64(), "double": pa.float64(),
          "varchar": pa.string(), "boolean": pa.bool_(), "date": pa.date32(), "timestamp": pa.timestamp("us")}


@st.composite
def view_specs(draw, name: str, now: datetime) -> ViewSpec:
    kinds = draw(st.lists(st.sampled_from(sorted(_RAW)), min_size=1, max_size=4))
    features = [FeatureSpec(f"{name}_f{i}_{k}", k) for i, k in enumerate(kinds)]
    columns = [f.name for f in features]
    yaml_order = draw(st.none() | st.permutations(columns).map(list))
    spec = ViewSpec(name, features, yaml_order, draw(st.sampled_from((1, 1, 2))), draw(st.booleans()),
                    draw(st.sampled_from(TTLS_H)), draw(st.sampled_from(SLOS_H)))
    for version in range(1, spec.versions + 1):
        rows = []
        for key in KEYS[1:]:
            ages = draw(st.lists(st.sampled_from(AGES_H), min_size=0, max_size=3, unique=True))
            for age in ages:
                event_time = now - timedelta(hours=age, seconds=key)
                row = {"acct_id": key, "event_time": event_time}
                if spec.created_at:
                    row["created_at"] = draw(st.none() | st.just(event_time + timedelta(minutes=1)))
                for f in features:
                    row[f.name] = draw(st.none() | _RAW[f.kind])
                rows.append(row)
        spec.rows[version] = rows
    return spec


def projects(now: datetime):
    return st.lists(st.sampled_from(["alpha", "beta"]), min_size=1, max_size=2, unique=True).flatmap(
        lambda names: st.tuples(*[view_specs(n, now) for n in names]).map(list))


def raw_table(spec: ViewSpec, version: int) -> pa.Table:
    fields = [pa.field("acct_id", pa.int64()), pa.field("event_time", pa.timestamp("us"))]
    if spec.created_at:
        fields.append(pa.field("created_at", pa.timestamp("us")))
    fields += [pa.field(f.name, _ARROW[f.kind]) for f in spec.features]
    schema = pa.schema(fields)
    rows = spec.rows[version]
    return pa.table({fd.name: pa.array([r[fd.name] for r in rows], fd.type) for fd in schema}, schema=schema)


def write_project(root: Path, views: list[ViewSpec], engine: str, pg: dict | None = None,
                  schema: str = "main", raw_schema: str = "raw") -> Path:
    """The dbt project at root/accounts (raw tables are the caller's to load into `raw_schema`)."""
    project = root / "accounts"
    models = project / "models"
    models.mkdir(parents=True, exist_ok=True)
    (project / "dbt_project.yml").write_text(
        "name: accounts\nversion: '1.0'\nconfig-version: 2\nprofile: accounts\n"
        "vars:\n  featurehouse:\n    entities:\n      acct: [acct_id]\n"
        "models:\n  accounts:\n    +materialized: table\n")
    if engine == "duckdb":
        output = "      type: duckdb\n      path: accounts.duckdb\n      threads: 1\n"
    else:
        assert pg is not None
        output = (f"      type: postgres\n      host: {pg['host']}\n      port: {pg['port']}\n      user: {pg['user']}\n"
                  f"      password: ''\n      dbname: {pg['dbname']}\n      schema: {schema}\n      threads: 1\n")
    (project / "profiles.yml").write_text(f"accounts:\n  target: dev\n  outputs:\n    dev:\n{output}")
    (project / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    tables = [f"{{name: raw_{v.name}_v{n}}}" for v in views for n in range(1, v.versions + 1)]
    (models / "sources.yml").write_text(
        f"version: 2\nsources:\n  - name: raw\n    schema: {raw_schema}\n    tables: [{', '.join(tables)}]\n")
    yml = ["version: 2", "models:"]
    for v in views:
        write_view_sql(project, v, engine)
        yml.append(f"  - name: {v.name}")
        if v.versions > 1:
            yml += ["    latest_version: 1", "    versions:"] + [f"      - v: {n}" for n in range(1, v.versions + 1)]
        if v.yaml_order is not None:
            kinds = {f.name: f.kind for f in v.features}
            yml += ["    columns:", "      - {name: acct_id, data_type: bigint}", "      - {name: event_time, data_type: timestamp}"]
            if v.created_at:
                yml.append("      - {name: created_at, data_type: timestamp}")
            yml += [f"      - {{name: {c}, data_type: '{sql_type(kinds[c], engine)}'}}" for c in v.yaml_order]
    (models / "features.yml").write_text("\n".join(yml) + "\n")
    return project


def write_view_sql(project: Path, v: ViewSpec, engine: str, restatement: str | None = None, factor: int = 1) -> None:
    """A view version's model; `factor` multiplies its numeric features (a logic change)."""
    meta = {"entity": "acct", "event_time": "event_time"}
    if v.created_at:
        meta["created_at"] = "created_at"
    if v.ttl_h is not None:
        meta["ttl"] = f"{int(v.ttl_h)}h"
    if v.slo_h is not None:
        meta["freshness_slo"] = f"{int(v.slo_h)}h"
    if restatement:
        meta["restatement"] = restatement
    for n in range(1, v.versions + 1):
        cols = ["acct_id", "event_time"] + (["created_at"] if v.created_at else [])
        for f in v.features:
            expr = f.name if factor == 1 or f.kind not in ("bigint", "double") else f"{f.name} * {factor}"
            cols.append(f"cast({expr} as {sql_type(f.kind, engine)}) as {f.name}")
        name = f"{v.name}_v{n}" if v.versions > 1 else v.name
        (project / "models" / f"{name}.sql").write_text(
            f"{{{{ config(meta={{'featurehouse': {meta!r}}}) }}}}\n"
            f"select {', '.join(cols)}\nfrom {{{{ source('raw', 'raw_{v.name}_v{n}') }}}}\n")


@dataclass(frozen=True)
class Expected:
    value: Any
    event_time: datetime | None
    status: str
    version: int


def expected(v: ViewSpec, version: int, key: int, feature: FeatureSpec, engine: str, now: datetime) -> Expected:
    """The oracle: the newest row of the key (distinct event times per key), judged by docs/semantics.md."""
    rows = [r for r in v.rows[version] if r["acct_id"] == key]
    if not rows:
        return Expected(None, None, "missing", version)
    row = max(rows, key=lambda r: r["event_time"])
    age_h = (now - row["event_time"]).total_seconds() / 3600
    if v.ttl_h is not None and age_h > v.ttl_h:
        return Expected(None, row["event_time"], "expired", version)
    status = "stale" if v.slo_h is not None and age_h > v.slo_h else "ok"
    return Expected(served_value(feature.kind, engine, row[feature.name]), row["event_time"], status, version)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
