"""The dbt macro point_in_time_join, built by dbt on each engine, equals the oracle and the Python API."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from featurehouse import FeatureStore
from featurehouse.offline.warehouse import DuckDBWarehouse, PostgresWarehouse
from featurehouse.project import DbtProject
from tests import fixture_data
from tests.oracle import OracleView, point_in_time

REPO = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "dbt_fixture"


def _copy_fixture(tmp: Path) -> Path:
    project = tmp / "fixture"
    shutil.copytree(FIXTURE, project, ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", "*.duckdb"))
    (project / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    return project


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def built_fixture(request, tmp_path_factory):
    """The fixture project with its raw data loaded and `dbt build` run on one engine."""
    project_dir = _copy_fixture(tmp_path_factory.mktemp(request.param))
    data = fixture_data.make()
    mp = pytest.MonkeyPatch()
    if request.param == "duckdb":
        db = project_dir / "fixture.duckdb"
        mp.setenv("FH_FIXTURE_DUCKDB", str(db))
        wh = DuckDBWarehouse(db)
    else:
        url = request.getfixturevalue("postgres_url")
        wh = PostgresWarehouse(url)
        params = wh.con.get_dsn_parameters()
        mp.setenv("FH_FIXTURE_PG_HOST", params.get("host", "127.0.0.1"))
        mp.setenv("FH_FIXTURE_PG_PORT", params.get("port", "5432"))
        mp.setenv("FH_FIXTURE_PG_USER", params.get("user", "postgres"))
        mp.setenv("FH_FIXTURE_PG_DBNAME", params.get("dbname", "test"))
    for name, table in fixture_data.tables(data).items():
        wh.replace_table("fh_raw", name, table)
    wh.close()
    project = DbtProject(project_dir, target=request.param)
    project.run_dbt(["deps"])
    project.run_dbt(["build"])
    store = FeatureStore(project_dir, target=request.param)
    yield store, data
    store.close()
    mp.undo()


def _expected(data, known_at=False, with_profile=True):
    keys = ("card_id", "merchant")
    views = {"stats": OracleView(keys, "event_time", "created_at", ("cnt", "label_txt"), data["stats"],
                                 timedelta(seconds=5), timedelta(seconds=1), known_at)}
    wanted = {"stats": ["cnt", "label_txt"]}
    if with_profile:
        views["profile"] = OracleView(keys, "ts", None, ("score",), data["profile"], timedelta(seconds=3))
        wanted["profile"] = ["score"]
    return point_in_time(data["spine"], "as_of", views, wanted)


def _rows(store, relation_sql):
    rows = store.warehouse.fetch_arrow(f"select * from {relation_sql}").to_pylist()
    return sorted(rows, key=lambda r: (r["row_no"], repr(sorted(r.items()))))


def _sorted(rows):
    return sorted(rows, key=lambda r: (r["row_no"], repr(sorted(r.items()))))


def test_macro_model_equals_the_oracle(built_fixture):
    store, data = built_fixture
    view = store.registry.view("stats")
    relation = store.warehouse.relation_sql(view.relation.__class__(view.relation.database, view.relation.schema, "training_pit"))
    assert _rows(store, relation) == _sorted(_expected(data))


def test_macro_as_known_at_equals_the_oracle(built_fixture):
    store, data = built_fixture
    view = store.registry.view("stats")
    relation = store.warehouse.relation_sql(view.relation.__class__(view.relation.database, view.relation.schema, "training_pit_known_at"))
    assert _rows(store, relation) == _sorted(_expected(data, known_at=True, with_profile=False))


def test_python_training_set_from_a_warehouse_relation_equals_the_oracle(built_fixture):
    store, data = built_fixture
    spine = store.registry.view("stats").relation
    spine_sql = store.warehouse.relation_sql(spine.__class__(spine.database, spine.schema, "spine"))
    got = store.training_set_arrow(f"select * from {spine_sql}", ["stats.cnt", "stats.label_txt", "profile.score"],
                                   timestamp="as_of")
    assert _sorted(got.to_pylist()) == _sorted(_expected(data))


def test_registry_reads_metadata_and_relation_types(built_fixture):
    store, _ = built_fixture
    stats = store.registry.view("stats")
    assert (stats.entity.keys, stats.event_time, stats.created_at) == (("card_id", "merchant"), "event_time", "created_at")
    assert stats.feature_columns == ("cnt", "label_txt")
    assert stats.ttl == timedelta(seconds=5) and stats.serving_delay == timedelta(seconds=1)
    # profile declares no columns: its feature types come from the built relation
    assert store.registry.view("profile").feature_columns == ("score",)


def test_feature_definitions_model_lists_every_view(built_fixture):
    store, _ = built_fixture
    stats = store.registry.view("stats").relation
    rel = store.warehouse.relation_sql(stats.__class__(stats.database, stats.schema, "feature_definitions"))
    rows = {r["name"]: r for r in store.warehouse.fetch_arrow(f"select * from {rel}").to_pylist()}
    assert set(rows) == {"stats", "profile"}
    assert rows["stats"]["entity_type"] == "thing" and rows["stats"]["version"] == 1
    assert rows["stats"]["transform_ref"].startswith("model.fh_fixture.stats@")
    assert rows["stats"]["ttl"] == "5s" and rows["profile"]["sensitivity"] == "pii"



def test_latest_values_macro_equals_the_sync_query(built_fixture):
    from featurehouse.sync.latest import latest_values_sql

    store, data = built_fixture
    view = store.registry.view("stats")
    rel = store.warehouse.relation_sql(view.relation.__class__(view.relation.database, view.relation.schema, "latest_stats"))
    macro = store.warehouse.fetch_arrow(f"select * from {rel}").to_pylist()
    python = store.warehouse.fetch_arrow(latest_values_sql(view, store.warehouse.dialect)).to_pylist()
    python = [{("event_time" if k == "__fh_event_time" else "created_at" if k == "__fh_created_at" else k): v
               for k, v in r.items()} for r in python]
    key = lambda r: (r["card_id"], r["merchant"])  # noqa: E731
    assert sorted(macro, key=key) == sorted(python, key=key)
    assert len(macro) == len({(r["card_id"], r["merchant"]) for r in data["stats"]
                              if r["event_time"] and r["merchant"] is not None})


def test_pushed_rows_are_read_by_the_macro_and_the_python_api_alike(built_fixture):
    """A landing table of pushed rows joins the model in both roads (docs/semantics.md, pushed rows)."""
    import pyarrow as pa

    from featurehouse.stream.log import STREAM_ID, landing_relation

    store, data = built_fixture
    view = store.registry.view("stats")
    pushed = [{"card_id": 1, "merchant": "ü", "event_time": fixture_data.INSTANTS[6],
               "created_at": fixture_data.INSTANTS[6], "cnt": 77, "label_txt": "pushed", STREAM_ID: "1-0"}]
    landing = landing_relation(view)
    store.warehouse.append_table(landing.schema, landing.identifier, pa.Table.from_pylist(pushed), STREAM_ID)
    try:
        store.close()
        store.project.run_dbt(["build", "--select", "training_pit"])
        expected = _sorted(point_in_time(
            data["spine"], "as_of",
            {"stats": OracleView(("card_id", "merchant"), "event_time", "created_at", ("cnt", "label_txt"),
                                 data["stats"] + pushed, timedelta(seconds=5), timedelta(seconds=1)),
             "profile": OracleView(("card_id", "merchant"), "ts", None, ("score",), data["profile"], timedelta(seconds=3))},
            {"stats": ["cnt", "label_txt"], "profile": ["score"]}))
        assert any(r["stats__cnt"] == 77 for r in expected)  # the pushed row matters to some spine row
        relation = store.warehouse.relation_sql(view.relation.__class__(view.relation.database, view.relation.schema, "training_pit"))
        assert _rows(store, relation) == expected
        spine_sql = store.warehouse.relation_sql(view.relation.__class__(view.relation.database, view.relation.schema, "spine"))
        python = store.training_set_arrow(f"select * from {spine_sql}", ["stats.cnt", "stats.label_txt", "profile.score"],
                                          timestamp="as_of")
        assert _sorted(python.to_pylist()) == expected
    finally:
        store.warehouse.execute(f"DROP TABLE {store.warehouse.relation_sql(landing)}")
        store.close()
        store.project.run_dbt(["build", "--select", "training_pit"])
