"""The main job end to end on the example project, and the same training set from every road and engine."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from featurehouse import FeatureStore
from featurehouse.cli.main import cli

REPO = Path(__file__).resolve().parent.parent
SCALE = "0.05"
FRAUD_FEATURES = [
    "user_txn_stats.txn_count_1h", "user_txn_stats.txn_count_24h", "user_txn_stats.amount_sum_24h",
    "card_txn_stats.txn_count_1h", "card_txn_stats.seconds_since_previous_txn", "merchant_risk.chargeback_rate_30d",
    "user_profile.country", "user_profile.is_premium",
]


def copy_example(tmp: Path) -> Path:
    project = tmp / "demo"
    shutil.copytree(REPO / "dbt_project", project,
                    ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", ".featurehouse", "*.duckdb"))
    (project / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    return project


def run_demo(project: Path, target: str | None = None):
    args = (["--target", target] if target else []) + ["demo", "--project-dir", str(project), "--scale", SCALE]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def duckdb_demo(tmp_path_factory):
    project = copy_example(tmp_path_factory.mktemp("duckdb"))
    return project, run_demo(project)


def canonical(rows, key):
    """Rows sorted by a key, NaN as NULL."""
    def norm(v):
        return None if isinstance(v, float) and math.isnan(v) else v
    return sorted(({k: norm(v) for k, v in r.items()} for r in rows), key=lambda r: tuple(str(r[k]) for k in key))


def assert_same_rows(left, right, key):
    """Equal row by row; floats to 1e-9 relative (engines sum and average in different orders)."""
    left, right = canonical(left, key), canonical(right, key)
    assert len(left) == len(right)
    for a, b in zip(left, right):
        assert a.keys() == b.keys()
        for col in a:
            if isinstance(a[col], float) and isinstance(b[col], float):
                assert math.isclose(a[col], b[col], rel_tol=1e-9), (col, a, b)
            else:
                assert a[col] == b[col], (col, a, b)


def test_demo_builds_features_and_a_training_set_per_model(duckdb_demo):
    project, result = duckdb_demo
    assert "registry: 6 feature views" in result.output
    for model in ("fraud_model", "recommender_model"):
        table = pq.read_table(project / ".featurehouse" / "training" / f"{model}.parquet")
        assert table.num_rows > 1000
        assert model in result.output


def test_demo_training_set_keeps_every_label_row_in_order(duckdb_demo):
    project, _ = duckdb_demo
    store = FeatureStore(project)
    try:
        labels = store.warehouse.fetch_arrow(
            f"select * from {store.warehouse.relation_sql(store.relation_of('fraud_labels'))}")
        trained = pq.read_table(project / ".featurehouse" / "training" / "fraud_model.parquet")
        assert trained.select(labels.column_names).equals(labels)
    finally:
        store.close()


def test_macro_model_and_python_give_the_same_training_set(duckdb_demo):
    project, _ = duckdb_demo
    store = FeatureStore(project)
    try:
        macro = store.warehouse.fetch_arrow(
            f"select * from {store.warehouse.relation_sql(store.relation_of('fraud_training_set'))}").to_pylist()
        python = store.training_set_arrow("fraud_labels", FRAUD_FEATURES, timestamp="label_time").to_pylist()
        assert_same_rows(macro, python, ["transaction_id"])
        assert any(r["merchant_risk__chargeback_rate_30d"] for r in python)  # not all NULL
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_and_duckdb_give_the_same_training_sets(duckdb_demo, postgres_url, tmp_path, monkeypatch):
    import psycopg2

    params = psycopg2.connect(postgres_url).get_dsn_parameters()
    monkeypatch.setenv("FEATUREHOUSE_PG_HOST", params.get("host", "127.0.0.1"))
    monkeypatch.setenv("FEATUREHOUSE_PG_PORT", params.get("port", "5432"))
    monkeypatch.setenv("FEATUREHOUSE_PG_USER", params.get("user", "postgres"))
    monkeypatch.setenv("FEATUREHOUSE_PG_DBNAME", params.get("dbname", "test"))
    monkeypatch.setenv("FEATUREHOUSE_PG_SCHEMA", "featurehouse_demo_test")
    project = copy_example(tmp_path)
    run_demo(project, target="postgres")
    duck_project, _ = duckdb_demo
    for model, key in (("fraud_model", ["transaction_id"]), ("recommender_model", ["interaction_id"])):
        pg = pq.read_table(project / ".featurehouse" / "training" / f"{model}.parquet").to_pylist()
        duck = pq.read_table(duck_project / ".featurehouse" / "training" / f"{model}.parquet").to_pylist()
        assert_same_rows(pg, duck, key)


def test_demo_syncs_and_the_online_vector_matches_the_warehouse(duckdb_demo):
    _, result = duckdb_demo
    assert "sync of 6 views" in result.output
    assert "online vector vs warehouse latest" in result.output
    assert "NO" not in result.output.split("online vector vs warehouse latest")[1]


def test_demo_online_store_has_parity_with_the_warehouse_for_every_entity(duckdb_demo):
    """Exact parity after sync: every entity's online values and event time equal the warehouse's latest row."""
    from featurehouse.sync.latest import latest_values_sql

    project, _ = duckdb_demo
    store = FeatureStore(project)
    try:
        for view in store.online_views():
            latest = store.warehouse.fetch_arrow(latest_values_sql(view, "duckdb")).to_pylist()
            keys = [tuple(r[k] for k in view.entity.keys) for r in latest]
            online = store.online.read(view.entity.name, keys, [(view, view.version)])
            for row, records in zip(latest, online):
                record = records[view.versioned_name]
                assert record is not None and record.event_time == row["__fh_event_time"], (view.name, row)
                assert record.values == {f.column: row[f.column] for f in view.features}, (view.name, row)
    finally:
        store.close()


def test_demo_ends_with_a_vector_served_over_http(duckdb_demo):
    _, result = duckdb_demo
    served = result.output.split("served over HTTP with a bearer token: GET /v1/features/user/")[1]
    assert "user_txn_stats.txn_count_1h" in served and "status" in served


@contextlib.contextmanager
def demo_server(project: Path, *args: str):
    """A real `featurehouse serve` process on the demo's online store, answering /healthz; yields
    (its base URL, an in-process store over the same Redis)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    store = FeatureStore(project)
    try:
        store.online.ping()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env["FEATUREHOUSE_REDIS_URL"] = store.online.embedded.url
        env.setdefault("FEATUREHOUSE_AUTH", "none")  # loopback; tests of tokens set their own
        proc = subprocess.Popen([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(project),
                                 "serve", "--port", str(port), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.05)
            yield base, store
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        store.close()


def test_the_http_client_reads_what_the_in_process_sdk_reads(duckdb_demo):
    """A real `featurehouse serve` process on the demo; the client mirrors FeatureStore.online_features."""
    from featurehouse.serving.client import ServingClient

    project, _ = duckdb_demo
    with demo_server(project) as (base, store):
        remote = ServingClient(base).online_features("user", ["1", "2"], model="fraud_model")
        local = store.online_features("user", ["1", "2"], model="fraud_model")
        assert [{n: (v.value, v.event_time, v.status) for n, v in r.features.items()} for r in remote] == \
               [{n: (v.value, v.event_time, v.status) for n, v in r.features.items()} for r in local]
        assert len(remote[0].features) >= 8


def test_a_second_project_in_the_same_process_builds_into_its_own_warehouse(duckdb_demo, tmp_path):
    """dbt-duckdb caches its DuckDB per process; both demo profiles say `.featurehouse/warehouse.duckdb`."""
    first, _ = duckdb_demo
    second = copy_example(tmp_path)
    run_demo(second)
    for project in (first, second):
        store = FeatureStore(project)
        try:
            assert store.warehouse.fetch_arrow("select count(*) from fraud_labels").column(0)[0].as_py() > 0
        finally:
            store.close()


def test_metrics_add_up_every_worker_of_a_multi_worker_server(duckdb_demo):
    """Whichever worker answers the scrape, it reports the requests all workers served."""
    import re
    import time
    import urllib.request

    project, _ = duckdb_demo
    with demo_server(project, "--workers", "2") as (base, _store):
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            urllib.request.urlopen(f"{base}/v1/features/user/1?names=user_profile.country", timeout=5).read()
        time.sleep(1.2)  # each worker adds its value counts to the shared counters once a second
        for _ in range(6):
            text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
            count = re.search(r'featurehouse_request_seconds_count\{route="vector"\} ([\d.]+)', text)
            assert count and float(count.group(1)) == 40.0, text[:2000]
            served = re.search(r'featurehouse_values_served_total\{view="user_profile"\} ([\d.]+)', text)
            assert served and float(served.group(1)) == 40.0
