"""featurehouse's own tables have one home: a spec each, written with parameters, in a schema the
project chooses (vars.featurehouse.schema) that the dbt macros read too."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from featurehouse.catalog import ALL, SERVED_VALUES, SYNC_RUNS, VIEW_VERSIONS, Catalog
from featurehouse.registry.model import Relation
from tests.shop_project import write_project
from tests.stores import project_store

ODD = "o'neil\"; DROP TABLE x; --"


@pytest.fixture
def catalog(warehouse):
    schema = "fh_catalog_test"
    warehouse.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    yield Catalog(warehouse, schema)
    warehouse.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_every_table_is_made_in_the_chosen_schema_with_its_spec_columns(catalog):
    for spec in ALL:
        catalog.table(spec)
        described = catalog.warehouse.describe(Relation(None, catalog.schema, spec.name))
        assert described is not None and list(described) == list(spec.column_names), spec.name


def test_values_travel_as_parameters_and_read_back_unchanged(catalog):
    when = datetime(2026, 11, 30, 12, 0, 0, 123456)
    catalog.insert(SYNC_RUNS, {"run_id": "r1", "view": ODD, "version": 3, "mode": "full", "started_at": when,
                               "status": "running", "rows_read": 2**62})
    catalog.update(SYNC_RUNS, {"status": "success", "watermark_to": when, "error": ODD}, {"run_id": "r1"})
    [row] = catalog.rows(SYNC_RUNS, {"view": ODD, "version": 3})
    assert (row["view"], row["status"], row["error"], row["rows_read"], row["watermark_to"]) == \
        (ODD, "success", ODD, 2**62, when)
    assert catalog.max(SYNC_RUNS, "watermark_to", {"view": ODD}) == when
    assert catalog.latest(SYNC_RUNS, ("view", "version"), ("watermark_to",), {"status": "success"}) == \
        [{"view": ODD, "version": 3, "watermark_to": when}]


def test_null_matches_is_null_and_a_transaction_is_all_or_nothing(catalog):
    catalog.insert(VIEW_VERSIONS, {"view": "v", "version": 1, "active_from": datetime(2026, 1, 1)})
    with pytest.raises(ZeroDivisionError):
        with catalog.transaction():
            catalog.update(VIEW_VERSIONS, {"active_until": datetime(2026, 2, 1)}, {"view": "v", "active_until": None})
            raise ZeroDivisionError
    assert [r["version"] for r in catalog.rows(VIEW_VERSIONS, {"active_until": None})] == [1]


def test_a_table_made_by_an_older_featurehouse_gets_the_columns_added_since(catalog):
    older = [c for c in SYNC_RUNS.columns if c[0] not in ("rows_restated", "logic_ref")]
    catalog.warehouse.ensure_table(catalog.schema, SYNC_RUNS.name, older)
    catalog.insert(SYNC_RUNS, {"run_id": "r2", "view": "v", "version": 1, "rows_restated": 4, "logic_ref": "m@x"})
    assert catalog.rows(SYNC_RUNS, {"run_id": "r2"})[0]["rows_restated"] == 4


def test_appending_a_batch_twice_keeps_it_once(catalog):
    batch = pa.table({"stream_id": ["1-0", "1-1"], "feature": ["a.b", "a.c"], "version": [1, 1],
                      "value_num": [1.5, None]})
    catalog.append(SERVED_VALUES, batch, "stream_id")
    catalog.append(SERVED_VALUES, batch, "stream_id")
    assert sorted(r["stream_id"] for r in catalog.rows(SERVED_VALUES)) == ["1-0", "1-1"]


def test_a_project_chooses_the_schema_and_the_macros_read_it(tmp_path, embedded_redis):
    """vars.featurehouse.schema: sync runs, published schemas, the version log and stream landing tables
    all go there, and the latest_values macro follows a promote recorded there."""
    project = write_project(tmp_path, versions=2, scores=False, catalog_schema="fh_meta")
    (project / "models" / "orders_latest.sql").write_text("{{ featurehouse.latest_values('customer_orders') }}\n")
    with project_store(project, embedded_redis.url) as store:
        store.build(quiet=True)
        store.sync()
        store.backfill("customer_orders", 2)
        store.promote("customer_orders", 2)
        store.push("customer_orders", [{"customer_id": 999, "event_time": datetime(2026, 1, 1), "n_small": 1,
                                        "n_large": 2}])
        store.stream_consumer().run_once()
        wh = store.warehouse
        tables = {r["table_name"] for r in wh.fetch_arrow(
            "select table_name from information_schema.tables where table_schema = 'fh_meta'").to_pylist()}
        assert {"featurehouse_sync_runs", "featurehouse_published_schemas", "featurehouse_view_versions",
                "stream__customer_orders__v2"} <= tables
        assert not wh.fetch_arrow("select 1 from information_schema.tables where table_schema = 'featurehouse'").num_rows
        store.build(select=["orders_latest"], quiet=True)
        latest = store.warehouse.fetch_arrow("select customer_id, n_large from main.orders_latest").to_pylist()
        v2 = {r["customer_id"]: r["n_large"] for r in latest}
        assert v2[999] == 2 and v2[1] == 2 * 102  # version 2 (values doubled) and its pushed row


def test_naming_a_new_schema_over_existing_history_warns(tmp_path, embedded_redis):
    project = write_project(tmp_path, scores=False)
    with project_store(project, embedded_redis.url) as store:
        store.build(quiet=True)
        store.sync()  # history in the default schema
    config = project / "dbt_project.yml"
    config.write_text(config.read_text().replace("      customer: [customer_id]\n",
                                                 "      customer: [customer_id]\n    schema: fh_moved\n"))
    with project_store(project, embedded_redis.url) as store:
        with pytest.warns(UserWarning, match="'fh_moved', which holds no featurehouse tables yet, while 'featurehouse'"):
            store.catalog  # noqa: B018 - opening the catalog is what warns
