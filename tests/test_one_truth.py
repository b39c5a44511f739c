"""One truth: the SDK, a real `featurehouse serve` and the warehouse agree on every value, whatever
order a project's YAML lists columns in, however its views are typed, across versions and a wiped
online store (issue 9, defects 1, 2, 3 and 9)."""

from __future__ import annotations

import pytest

from featurehouse import FeatureStore
from featurehouse.errors import InvalidRequest
from featurehouse.online.layout import LayoutConflict
from featurehouse.online.store import RedisOnlineStore
from featurehouse.serving.client import ServingClient
from tests.shop_project import serving, write_project

NAMES = ["customer_orders.n_small", "customer_orders.n_large", "customer_scores.score"]
IDS = [str(c) for c in range(1, 21)]


def warehouse_latest(store: FeatureStore, view_name: str, version: int | None = None) -> dict[str, dict]:
    """customer id -> {feature: value} from the warehouse's latest rows (the sync's own ranking aside:
    written here by hand)."""
    view = store.registry.view(view_name, version)
    rel = store.warehouse.relation_sql(view.relation)
    cols = ", ".join(f'"{c}"' for c in view.feature_columns)
    order = "event_time desc" + (f", {view.created_at} desc nulls last" if view.created_at else "")
    rows = store.warehouse.fetch_arrow(
        f"select customer_id, {cols} from {rel} qualify row_number() over "
        f"(partition by customer_id order by {order}) = 1").to_pylist()
    return {str(r.pop("customer_id")): {f"{view.name}.{c}": v for c, v in r.items()} for r in rows}


def served_over_http(store: FeatureStore, project, url: str, names: list[str]):
    """Every id's vector from a real `featurehouse serve` on the project (the warehouse left free for it)."""
    store.close_warehouse()
    with serving(project, url) as base:
        return ServingClient(base).online_features("customer", IDS, names)


def values(vectors) -> list[dict]:
    return [{n: (f.value, f.status, f.version) for n, f in v.features.items()} for v in vectors]


@pytest.fixture
def make_shop(tmp_path, embedded_redis):
    """make_shop(**write_project options) -> (project, store, redis url): built and synced, on a flushed
    private Redis; YAML lists customer_orders' columns in the reverse of its SELECT."""
    stores = []

    def make(**options):
        options.setdefault("yaml_columns", ["n_large", "n_small"])
        project = write_project(tmp_path, **options)
        online = RedisOnlineStore.from_url(embedded_redis.url)
        online.client.flushdb()
        store = FeatureStore(project)
        stores.append(store)
        store.use_online_store(online)
        store.build(quiet=True)
        store.sync()
        return project, store, embedded_redis.url

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def shop(make_shop):
    return make_shop(versions=2)


def test_http_in_process_and_warehouse_agree_when_yaml_and_select_orders_differ(make_shop):
    """Defect 1: serving workers read the YAML's order while sync wrote the relation's: HTTP served
    another feature's value. Here every path gives the warehouse's values."""
    project, store, url = make_shop(scores=False)
    expected = warehouse_latest(store, "customer_orders")
    local = store.online_features("customer", IDS, NAMES[:2])
    remote = served_over_http(store, project, url, NAMES[:2])
    assert values(remote) == values(local)
    for vector in local:
        assert {n: f.value for n, f in vector.features.items()} == expected[vector.entity_id]
        assert {f.status for f in vector.features.values()} == {"ok"}


def test_serve_answers_for_a_view_typed_by_its_built_relation(shop):
    """Defect 2: `featurehouse serve` crashed ("no feature columns") on a view without YAML types."""
    project, store, url = shop
    expected = warehouse_latest(store, "customer_scores")
    remote = served_over_http(store, project, url, NAMES)
    for vector in remote:
        assert vector.features["customer_scores.score"].value == pytest.approx(
            expected[vector.entity_id]["customer_scores.score"])
        assert vector.features["customer_scores.score"].status == "ok"


def test_a_wiped_store_is_whole_after_one_sync_active_version_included(shop):
    """Defect 3: the active version lived in two stores. After promoting v2, wiping the online store
    and syncing again, serving answers v2 (as training does), not v1 as missing."""
    project, store, url = shop
    store.backfill("customer_orders", 2)
    store.promote("customer_orders", 2)
    store.online.client.flushdb()
    store.sync()
    expected = warehouse_latest(store, "customer_orders", 2)
    local = store.online_features("customer", IDS, NAMES[:2])
    remote = served_over_http(store, project, url, NAMES[:2])
    assert values(remote) == values(local)
    for vector in remote:
        assert {n: (f.value, f.version, f.status) for n, f in vector.features.items()} == \
               {n: (v, 2, "ok") for n, v in expected[vector.entity_id].items()}


def test_a_backfilled_version_reads_back_in_its_columns_after_promote(shop):
    """Defect 9: backfill read v2's columns before dbt built it (YAML order) and stored its arrays in
    that order, while reads used the table's: after promote, the counts came back swapped."""
    project, store, url = shop
    store.warehouse.execute('drop table "customer_orders_v2"')  # v2 is new: declared, never built
    store.close_warehouse()
    backfiller = FeatureStore(project)  # a new process, as `featurehouse backfill` is
    backfiller.use_online_store(RedisOnlineStore.from_url(url))
    backfiller.backfill("customer_orders", 2)
    backfiller.promote("customer_orders", 2)
    backfiller.close_warehouse()
    reader = FeatureStore(project)  # another process: its own registry, the same online store
    reader.use_online_store(RedisOnlineStore.from_url(url))
    try:
        expected = warehouse_latest(reader, "customer_orders", 2)
        for vector in reader.online_features("customer", IDS, NAMES[:2]):
            assert {n: (f.value, f.version) for n, f in vector.features.items()} == \
                   {n: (v, 2) for n, v in expected[vector.entity_id].items()}
    finally:
        reader.close_warehouse()


def test_the_store_describes_its_own_layout_and_refuses_a_different_set_of_columns(shop):
    _, store, _ = shop
    layout = store.online.layouts()["customer_orders@1"]
    view = store.registry.view("customer_orders", 1)
    assert sorted(layout.columns) == sorted(view.feature_columns)
    import dataclasses

    renamed = dataclasses.replace(view, features=tuple(dataclasses.replace(f, column=f.column + "_x")
                                                       for f in view.features))
    with pytest.raises(LayoutConflict, match=r"customer_orders@1.*needs a new version"):
        store.online.layout_for_write(renamed)


def _double_n_large(project, restatement: str | None = None) -> None:
    """The same view, same version, corrected logic: n_large doubled (event and ingest times unchanged)."""
    path = project / "models" / "customer_orders.sql"
    sql = path.read_text().replace("n_large * 1 as n_large", "n_large * 2 as n_large")
    if restatement:
        sql = sql.replace("'owner': 'shop-team'", f"'owner': 'shop-team', 'restatement': '{restatement}'")
    path.write_text(sql)


def test_a_changed_published_view_fails_check_until_it_is_a_new_version_or_a_declared_restatement(make_shop):
    """Defect 4: rebuilding a published view with corrected values at equal event times changed what
    training saw while serving kept the old values, and `check` passed. Now check fails naming the
    view; a declared restatement makes the next sync rewrite exactly the changed values."""
    from featurehouse.guard.parity import check_parity

    project, store, _ = make_shop(scores=False)
    _double_n_large(project)
    store.build(quiet=True)
    gate = store.check(compile_sql=False)
    assert not gate.ok
    [change] = [c for c in gate.logic if not c.ok]
    assert change.view == "customer_orders" and change.version == 1
    assert "declare version 2" in change.message and "restatement" in change.message
    [run] = store.sync()
    assert run.rows_written == run.rows_restated == 0  # the guard alone never rewrites equal times
    assert run.warning and "customer_orders@1: its SQL changed since it was published" in run.warning
    assert check_parity(store.warehouse, store.online, store.registry.view("customer_orders"), None).mismatched == 20

    _double_n_large(project, restatement="n_large was halved")
    store.build(quiet=True)
    assert store.check(compile_sql=False).ok  # declared: the gate lets it through
    [run] = store.sync()
    assert (run.mode, run.rows_restated, run.status, run.warning) == ("restate", 20, "success", None)
    view = store.registry.view("customer_orders")
    assert check_parity(store.warehouse, store.online, view, None).mismatched == 0
    assert store.sync()[0].mode == "incremental"  # restated once, not at every sync
    expected = warehouse_latest(store, "customer_orders")
    for vector in store.online_features("customer", IDS, NAMES[:2]):
        assert {n: f.value for n, f in vector.features.items()} == expected[vector.entity_id]


def test_sync_restate_rewrites_only_values_that_changed(make_shop):
    """`sync --restate VIEW`: an upstream correction (same SQL, same times, new values) reaches the store."""
    import pyarrow as pa

    from featurehouse.guard.parity import check_parity
    from featurehouse.offline.warehouse import DuckDBWarehouse

    project, store, _ = make_shop(scores=False)
    store.close_warehouse()
    with DuckDBWarehouse(project / "shop.duckdb") as wh:  # correct every other customer's n_small upstream
        raw = wh.fetch_arrow("select * from raw.orders")
        fixed = [v + 1 if c % 2 else v for c, v in zip(raw.column("customer_id").to_pylist(),
                                                        raw.column("n_small").to_pylist())]
        wh.replace_table("raw", "orders", raw.set_column(raw.schema.get_field_index("n_small"), "n_small",
                                                          pa.array(fixed, pa.int64())))
    store.build(quiet=True)
    assert store.sync()[0].rows_written == 0  # without a restatement, equal times are not newer
    [run] = store.sync(restate=["customer_orders"])
    assert (run.mode, run.rows_restated) == ("restate", 10)
    view = store.registry.view("customer_orders")
    assert check_parity(store.warehouse, store.online, view, None).mismatched == 0


def test_names_and_features_are_one_argument_on_every_read_path(make_shop):
    """training_set says features=, serving names=: both read paths take either."""
    _, store, _ = make_shop(scores=False)
    by_names = store.online_features("customer", ["1"], names=NAMES[:1])
    by_features = store.online_features("customer", ["1"], features=NAMES[:1])
    assert [{n: (f.value, f.event_time, f.status) for n, f in v.features.items()} for v in by_names] == \
        [{n: (f.value, f.event_time, f.status) for n, f in v.features.items()} for v in by_features]
    batch = store.batch_features("customer", ["1"], features=NAMES[:1]).table
    assert batch.column("customer_orders__n_small").to_pylist() == [by_names[0].features[NAMES[0]].value]


def test_serve_starts_while_another_process_holds_the_duckdb_file(shop):
    """Serving needs no warehouse connection: the loader falls back to the columns the warehouse last
    described (target/featurehouse_relations.json) when another process holds the DuckDB file."""
    import subprocess
    import sys

    project, store, url = shop
    store.close_warehouse()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", str(project / "shop.duckdb")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with serving(project, url) as base:
            [vector] = ServingClient(base).online_features("customer", ["3"], NAMES)
        assert {f.status for f in vector.features.values()} == {"ok"}
    finally:
        holder.communicate("", timeout=10)


def test_batch_scoring_refuses_an_id_that_cannot_be_the_key_as_serving_does(make_shop):
    """`abc` for a bigint key is an error naming the column on the batch path too, not a missing entity."""
    _, store, _ = make_shop(scores=False)
    with pytest.raises(InvalidRequest, match="key column 'customer_id' is bigint, and 'abc' is not an integer"):
        store.batch_features("customer", ["1", "abc"], features=NAMES[:1])
    assert store.batch_features("customer", ["1", "2"], features=NAMES[:1]).table.num_rows == 2
