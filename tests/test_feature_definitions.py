"""The `feature_definitions` model equals the Python registry: same views, versions, features in order and types.

The fixture project is copied into a tmp dir with one more feature view, `mixed` (version 2), whose YAML
declares some columns with a data_type, some without, in another order than its relation, and leaves one
undeclared. `profile` declares no columns at all. Built by `dbt build` from scratch on each engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re

import pytest
import yaml

from featurehouse import FeatureStore
from featurehouse.offline.warehouse import PostgresWarehouse
from featurehouse.project import DbtProject
from featurehouse.registry.model import Relation
from tests import fixture_data
from tests.projects import fixture_project

MIXED_SQL = """\
{{ config(meta={'featurehouse': {'entity': 'thing', 'event_time': 'ts', 'version': 2, 'online': false,
                                 'tags': ['a', 'b'], 'owner': 'mixed-team'}}) }}
select
    card_id,
    merchant,
    ts,
    cast(score as float8) as score_f,
    cast(score * 10 as bigint) as score_i,
    cast(merchant as varchar) as note
from {{ source('raw', 'profile') }}
"""

# listed out of relation order; score_i typed, note and merchant untyped, score_f not declared at all
MIXED_YML = """\
version: 2
models:
  - name: mixed
    description: a view declared in part
    columns:
      - {name: note, description: untyped, declared before the others}
      - {name: score_i, data_type: bigint}
      - {name: merchant}
"""


def _isolate(project_dir, suffix: str) -> tuple[str, str]:
    """Own PG schemas for this module's models and raw tables: other tests build the same fixture."""
    schema, raw = f"fh_defs_{suffix}", f"fh_defs_raw_{suffix}"
    profiles = yaml.safe_load((project_dir / "profiles.yml").read_text())
    profiles["fh_fixture"]["outputs"]["postgres"]["schema"] = schema
    (project_dir / "profiles.yml").write_text(yaml.safe_dump(profiles))
    sources = project_dir / "models" / "sources.yml"
    sources.write_text(sources.read_text().replace("schema: fh_raw", f"schema: {raw}"))
    return schema, raw


@contextlib.contextmanager
def _fresh_project(request, directory, engine: str):
    """The fixture project plus `mixed`, raw data loaded, not built; yields (project dir, target)."""
    with fixture_project(directory) as project_dir:
        (project_dir / "models" / "mixed.sql").write_text(MIXED_SQL)
        (project_dir / "models" / "mixed.yml").write_text(MIXED_YML)
        if engine == "duckdb":
            DbtProject(project_dir, target="duckdb").run_dbt(["deps"])
            yield project_dir, "duckdb"
            return
        url = request.getfixturevalue("postgres_url")
        schema, raw = _isolate(project_dir, f"{os.getpid()}_{directory.name[-12:].lower().replace('-', '_')}")
        wh = PostgresWarehouse(url)
        params = wh.con.get_dsn_parameters()
        mp = pytest.MonkeyPatch()
        for var, key, default in (("HOST", "host", "127.0.0.1"), ("PORT", "port", "5432"),
                                  ("USER", "user", "postgres"), ("DBNAME", "dbname", "test")):
            mp.setenv(f"FH_FIXTURE_PG_{var}", params.get(key, default))
        try:
            for name, table in fixture_data.tables(fixture_data.make()).items():
                wh.replace_table(raw, name, table)
            DbtProject(project_dir, target="postgres").run_dbt(["deps"])
            yield project_dir, "postgres"
        finally:
            for s in (schema, raw):
                wh.execute(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')
            wh.close()
            mp.undo()


ENGINES = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=ENGINES)
def project(request, tmp_path_factory):
    with _fresh_project(request, tmp_path_factory.mktemp(f"defs-{request.param}"), request.param) as p:
        yield p


@pytest.fixture(params=ENGINES)
def fresh_project(request, tmp_path):
    with _fresh_project(request, tmp_path, request.param) as p:
        yield p


@pytest.fixture(scope="module")
def built(project):
    """`dbt build` of the fresh project: feature_definitions is built in the same run as the views."""
    project_dir, target = project
    DbtProject(project_dir, target=target).run_dbt(["build"])
    store = FeatureStore(project_dir, target=target)
    yield store
    store.close()


def _definitions(store) -> dict[tuple[str, int], dict]:
    stats = store.registry.view("stats").relation
    rel = store.warehouse.relation_sql(Relation(stats.database, stats.schema, "feature_definitions"))
    rows = store.warehouse.fetch_arrow(f"select * from {rel}").to_pylist()
    assert len(rows) == len({(r["name"], r["version"]) for r in rows}), rows
    return {(r["name"], r["version"]): r for r in rows}


def _as_registry_says(row: dict) -> dict:
    schema = json.loads(row["schema"], object_pairs_hook=list)
    features = row["features"].split(",") if row["features"] else []
    assert [c for c, _ in schema] == features, row  # `schema` lists the features, in order
    return {
        "features": [(c, t.lower()) for c, t in schema],
        "transform_ref": row["transform_ref"],
        "entity": (row["entity_type"], tuple(row["entity_keys"].split(","))),
        "timestamps": (row["event_time"], row["created_at"]),
        "meta": (row["owner"], row["sensitivity"], row["online"], tuple(filter(None, row["tags"].split(",")))),
        "description": row["description"],
    }


def _registry(store) -> dict[tuple[str, int], dict]:
    return {
        key: {
            "features": [(f.column, f.data_type.lower()) for f in view.features],
            "transform_ref": f"{view.unique_id}@{view.checksum}",
            "entity": (view.entity.name, view.entity.keys),
            "timestamps": (view.event_time, view.created_at),
            "meta": (view.owner, view.sensitivity, view.online, view.tags),
            "description": view.description,
        }
        for key, view in store.registry.views.items()
    }


def test_feature_definitions_equal_the_python_registry(built):
    got = {key: _as_registry_says(row) for key, row in _definitions(built).items()}
    assert got == _registry(built)


def test_views_without_declared_types_list_their_relation_typed_features(built):
    rows = _definitions(built)
    assert rows[("profile", 1)]["features"] == "score"
    # relation order, the declared type where there is one, the relation's type for the rest
    mixed = json.loads(rows[("mixed", 2)]["schema"], object_pairs_hook=list)
    assert [c for c, _ in mixed] == ["score_f", "score_i", "note"]
    assert mixed[1] == ("score_i", "bigint")
    assert re.fullmatch(r"double( precision)?", mixed[0][1].lower()) and "char" in mixed[2][1].lower()


def test_feature_definitions_built_before_the_views_still_lists_them(fresh_project):
    """Nothing orders feature_definitions after the views (it cannot ref them all): it must not matter."""
    project_dir, target = fresh_project
    dbt = DbtProject(project_dir, target=target)
    dbt.run_dbt(["build", "--select", "feature_definitions"])
    dbt.run_dbt(["build", "--exclude", "feature_definitions"])
    store = FeatureStore(project_dir, target=target)
    try:
        got = {key: _as_registry_says(row) for key, row in _definitions(store).items()}
        assert got == _registry(store)
    finally:
        store.close()
