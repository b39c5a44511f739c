"""Every path a user can take answers the same, and what the oracle says (issue 9's acceptance).

Random small projects (tests/random_project.py): YAML and SELECT orders that differ, views typed by
YAML or by their built relation, hugeint, decimal, double with NaN, strings, booleans, dates,
timestamps and NULLs, second versions promoted and rolled back, the online store wiped and synced
again, and restatements. For every entity and feature: the HTTP vector (the app a `serve` worker
builds, from the registry snapshot its parent hands it) == the in-process vector == batch_features
== the oracle's latest value, event time, status and version. On DuckDB, and on PostgreSQL in CI.
"""

from __future__ import annotations

import math
import os
import uuid
from datetime import datetime
from urllib.parse import urlparse

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from featurehouse.offline.warehouse import DuckDBWarehouse, PostgresWarehouse
from featurehouse.registry.snapshot import load_snapshot, save_snapshot
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.vectors import json_default
from featurehouse.types import same_type
from tests import random_project as rp
from tests.stores import project_store
from tests.test_feature_definitions import _as_registry_says, _registry

EXAMPLES = int(os.environ.get("FEATUREHOUSE_PATH_EXAMPLES", "6"))


def same(a, b) -> bool:
    """Equal, NaN equal to NaN, and an int equal to an int only (1 is not 1.0 here)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def as_json(value):
    return orjson.loads(orjson.dumps(value, default=json_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z))


class Engine:
    """Where a random project's raw tables and models live: a DuckDB file, or fresh PostgreSQL schemas."""

    def __init__(self, name: str, postgres_url: str | None):
        self.name, self.url = name, postgres_url
        self.suffix = uuid.uuid4().hex[:10]

    def write(self, root, views):
        if self.name == "duckdb":
            return rp.write_project(root, views, "duckdb")
        u = urlparse(self.url)
        pg = {"host": u.hostname or "127.0.0.1", "port": u.port or 5432, "user": u.username or "postgres",
              "dbname": (u.path or "/test").lstrip("/")}
        with PostgresWarehouse(self.url) as wh:  # featurehouse's own tables start empty for each project
            wh.execute("DROP SCHEMA IF EXISTS featurehouse CASCADE")
        return rp.write_project(root, views, "postgres", pg, f"fh_paths_{self.suffix}", f"fh_paths_raw_{self.suffix}")

    def load(self, project, views, only: tuple[str, int] | None = None):
        if self.name == "duckdb":
            wh, schema = DuckDBWarehouse(project / "accounts.duckdb"), "raw"
        else:
            wh, schema = PostgresWarehouse(self.url), f"fh_paths_raw_{self.suffix}"
        with wh:
            for v in views:
                for n in range(1, v.versions + 1):
                    if only is None or only == (v.name, n):
                        wh.replace_table(schema, f"raw_{v.name}_v{n}", rp.raw_table(v, n))

    def drop(self):
        if self.name == "postgres":
            with PostgresWarehouse(self.url) as wh:
                for s in (f"fh_paths_{self.suffix}", f"fh_paths_raw_{self.suffix}"):
                    wh.execute(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_name(request):
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    return request.param


def model_selector(view: rp.ViewSpec, version: int) -> str:
    return f"{view.name}.v{version}" if view.versions > 1 else view.name


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a dbt build an example: no shrinking
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
def test_http_in_process_batch_and_the_oracle_agree(engine_name, tmp_path_factory, embedded_redis, data):
    from tests.conftest import POSTGRES_URL

    engine = Engine(engine_name, POSTGRES_URL)
    now = rp.utcnow()
    views = data.draw(rp.projects(now), label="views")
    project = engine.write(tmp_path_factory.mktemp("paths"), views)
    engine.load(project, views)
    with project_store(project, embedded_redis.url) as store:
        try:
            run_example(store, views, engine, engine_name, project, now, embedded_redis.url, data)
        finally:
            engine.drop()


def run_example(store, views, engine, engine_name, project, now, redis_url, data) -> None:
    """Build and sync one random project, put it through versions, a wipe and a restatement as drawn,
    then hold every path against the oracle."""
    online = store.online
    store.build(quiet=True)
    store.sync()
    active = {v.name: 1 for v in views}
    for v in views:  # versions: backfill and promote 2, and maybe roll back to 1
        if v.versions > 1 and data.draw(st.sampled_from((True, True, False)), label=f"promote {v.name}@2"):
            store.backfill(v.name, 2)
            store.promote(v.name, 2)
            active[v.name] = 2
            if data.draw(st.booleans(), label=f"roll {v.name} back"):
                store.promote(v.name, 1)
                active[v.name] = 1
    if data.draw(st.booleans(), label="wipe the online store"):
        online.client.flushdb()
        store.sync()
    if data.draw(st.booleans(), label="restate"):  # a corrected upstream: same rows, new values
        v = data.draw(st.sampled_from(views), label="restated view")
        version = active[v.name]
        for row in v.rows[version]:
            for f in v.features:
                row[f.name] = data.draw(st.none() | rp._RAW[f.kind], label=f"restated {f.name}")
        store.close_warehouse()
        engine.load(project, views, only=(v.name, version))
        store.build(select=[model_selector(v, version)], quiet=True)
        store.sync(restate=[v.name])
    check_paths(store, views, active, engine_name, now, redis_url, project)
    check_feature_definitions(store)


def check_paths(store, views, active, engine_name, now: datetime, redis_url, project) -> None:
    names = [f"{v.name}.{f.name}" for v in views for f in v.features]
    ids = [str(k) for k in rp.KEYS]
    local = store.online_features("acct", ids, names)
    batch = store.batch_features("acct", ids, names).table.to_pylist()
    registry = load_snapshot(save_snapshot(store.registry, project / ".featurehouse" / "paths.pickle"))
    app = create_app(registry, ServeConfig(auth="none", push=True, redis_url=redis_url, log_sample_rate=0))
    app.state.reader.refresh_s = 0
    with TestClient(app) as client:
        response = client.post("/v1/features/acct:batchGet", json={"ids": ids, "names": names})
    assert response.status_code == 200, response.text
    remote = response.json()["vectors"]
    for key, vector, row, body in zip(rp.KEYS, local, batch, remote):
        for v in views:
            version = active[v.name]
            for f in v.features:
                name = f"{v.name}.{f.name}"
                want = rp.expected(v, version, key, f, engine_name, now)
                got = vector.features[name]
                where = f"{name} of acct {key} ({f.kind}, {engine_name})"
                assert same(got.value, want.value), f"in-process {where}: {got.value!r} != oracle {want.value!r}"
                assert (got.event_time, got.status, got.version) == (want.event_time, want.status, want.version), where
                column = f"{v.name}__{f.name}"  # the training set's name for it
                assert same(row[column], want.value), f"batch {where}: {row[column]!r} != oracle {want.value!r}"
                assert (row[f"{v.name}__event_time"], row[f"{v.name}__status"], row[f"{v.name}__version"]) == \
                    (want.event_time, want.status, want.version), f"batch {where}"
                served = body["features"][name]
                assert served["value"] == as_json(got.value), f"HTTP {where}: {served['value']!r} != {got.value!r}"
                assert (served["status"], served["version"], served["event_time"]) == \
                    (got.status, got.version, as_json(got.event_time)), f"HTTP {where}"


def check_feature_definitions(store) -> None:
    """The dbt model `featurehouse.feature_definitions` lists what the Python registry holds."""
    relation = store.relation_of("feature_definitions")
    rows = store.warehouse.fetch_arrow(f"select * from {store.warehouse.relation_sql(relation)}").to_pylist()
    got = {(r["name"], r["version"]): _as_registry_says(r) for r in rows}
    want = _registry(store)
    for key in want:  # the features' types as each engine spells them; compared as logical types
        assert key in got, f"feature_definitions lacks {key}"
        assert [c for c, _ in got[key]["features"]] == [c for c, _ in want[key]["features"]], key
        assert all(same_type(a, b) for (_, a), (_, b) in zip(got[key]["features"], want[key]["features"])), key
        got[key]["features"] = want[key]["features"]
    assert got == want

