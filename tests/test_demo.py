"""The main job end to end on the example project, and the same training set from every road and engine; the
demo ends as a small live system with every guardrail green, and `demo --break X` shows each guard firing."""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from datetime import datetime, timedelta
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


def run_demo(project: Path, target: str | None = None, *args: str):
    """The demo on a copy of the example, named by the global --project-dir as every command takes it."""
    options = ["--project-dir", str(project)] + (["--target", target] if target else [])
    result = CliRunner().invoke(cli, options + ["demo", "--scale", SCALE, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def invoke(project: Path, *args: str):
    return CliRunner().invoke(cli, ["--project-dir", str(project), *args], catch_exceptions=False)


def history_end(output: str) -> str:
    """The instant the demo's history ended, as it printed it (whole seconds, UTC)."""
    found = re.search(r"history up to (?:now, )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", output)
    assert found, output
    return found.group(1).replace(" ", "T")


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


def test_the_demo_runs_in_the_project_the_global_option_names(duckdb_demo):
    project, result = duckdb_demo
    assert f"example project: {project}" in result.output
    assert (project / ".featurehouse" / "warehouse.duckdb").is_file() and (project / "target" / "manifest.json").is_file()


def test_the_demo_refuses_a_project_that_is_not_the_example(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: my_features\nprofile: mine\n")
    result = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "demo"])
    assert result.exit_code == 2 and "not featurehouse's example" in result.output
    assert not (tmp_path / ".featurehouse").exists()
    result = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "demo", "--project-dir", str(tmp_path / "x")])
    assert result.exit_code == 2 and "two project dirs" in result.output


def test_right_after_the_demo_every_guardrail_passes(duckdb_demo):
    """The acceptance of the demo: its history reaches now, a live phase streams fresh events, and the
    guardrails a user runs next all exit 0."""
    project, result = duckdb_demo
    assert "every guardrail is green" in result.output
    for args in (["freshness"], ["parity", "--sample", "1000"], ["deploy-check", "fraud_model@1", "--json"]):
        run = invoke(project, *args)
        assert run.exit_code == 0, (args, run.output)
    import json

    gates = json.loads(invoke(project, "deploy-check", "fraud_model@1", "--json").output)["gates"]
    skew = [g for g in gates if g["gate"] == "skew"]
    assert skew and all(g["status"] == "pass" for g in skew), gates  # the vector the demo served was logged


def test_the_demo_serves_a_fresh_vector_and_says_so_in_words(duckdb_demo):
    _, result = duckdb_demo
    served = result.output.split("served over HTTP with a bearer token: GET /v1/features/user/")[1]
    served = served.split("guardrails now")[0]
    assert "all 10 values ok" in served.splitlines()[0]
    assert "(stale:" not in result.output and "stale" not in served
    assert re.search(r"live for [\d.]+s: a producer pushed [1-9]\d* transactions", result.output)


def test_the_history_ends_at_the_clock_and_is_the_same_for_the_same_seed_and_clock():
    import pyarrow.compute as pc

    from featurehouse.demo import data

    end = datetime(2026, 12, 1, 4, 30, 7)
    first, second = data.generate(0.02, 3, end), data.generate(0.02, 3, end)
    assert all(first[name].equals(second[name]) for name in data.TABLES)
    assert not first["transactions"].equals(data.generate(0.02, 4, end)["transactions"])
    for name, column in (("transactions", "ingested_at"), ("interactions", "ingested_at"), ("users", "updated_at")):
        assert pc.max(first[name].column(column)).as_py() <= end
    newest = pc.max(first["transactions"].column("transaction_at")).as_py()
    assert end - timedelta(days=1) < newest <= end  # the history reaches the clock's day
    runs = first["snapshot_runs"].column("snapshot_time").to_pylist()
    assert runs[-1] == datetime(2026, 12, 1) and len(runs) == 59  # a day is snapshotted once its run is done
    assert data.generate(0.02, 3, datetime(2026, 12, 1, 0, 30))["snapshot_runs"].column("snapshot_time")[-1].as_py() \
        == datetime(2026, 11, 30)


def test_the_live_rows_are_what_the_views_sql_computes(duckdb_demo):
    """Each pushed row equals what the view's compiled SQL computes over the history and the events before it."""
    import duckdb
    import pyarrow as pa

    from featurehouse.demo import data, live

    project, _ = duckdb_demo
    end = datetime(2026, 12, 1, 4, 30, 7)
    tables = data.generate(0.05, 42, end)
    producer = live.Producer(tables, 42)
    events: dict[str, list] = {"transactions": [], "interactions": []}
    rows: dict[str, list] = {view: [] for view in live.STREAMED}
    for i in range(200):
        now = end + timedelta(seconds=0.3 * (i + 1))
        event, changed = producer.transaction(now)
        events["transactions"].append(event)
        for view, row in changed.items():
            rows[view].append(row)
        event, row = producer.interaction(now)
        events["interactions"].append(event)
        rows["user_item_affinity"].append(row)
    con = duckdb.connect()
    for name, at in (("transactions", "transaction_at"), ("interactions", "interaction_at")):
        history = tables[name]
        pushed = pa.Table.from_pylist([{**e, "ingested_at": e[at]} for e in events[name]])
        columns = pushed.column_names
        both = pa.concat_tables([history.select(columns), pushed.cast(history.select(columns).schema)])
        con.register(f"stg_{name}", both)
    compiled = project / "target" / "compiled" / "featurehouse_demo" / "models" / "features"
    for view, keys in (("user_txn_stats", ["user_id"]), ("card_txn_stats", ["card_id"]),
                       ("user_item_affinity", ["user_id", "item_id"])):
        sql = re.sub(r'"[^"]+"\."[^"]+"\."(stg_\w+)"', r"\1", (compiled / f"{view}.sql").read_text())
        computed = {tuple(r[k] for k in keys) + (r["event_time"],): r
                    for r in con.sql(sql).to_arrow_table().to_pylist()}
        for row in rows[view]:
            expected = computed[tuple(row[k] for k in keys) + (row["event_time"],)]
            assert row == {k: expected[k] for k in row}, view


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
        features = list(store.registry.model("fraud_model").features)  # the model file names the exposure's list
        python = store.training_set_arrow("fraud_labels", features, timestamp="label_time").to_pylist()
        assert_same_rows(macro, python, ["transaction_id"])
        assert any(r["merchant_risk__chargeback_rate_30d"] for r in python)  # not all NULL
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_and_duckdb_give_the_same_training_sets(duckdb_demo, postgres_url, tmp_path, monkeypatch):
    """The same history on both engines: the DuckDB demo's, whose end the PostgreSQL run repeats with --end."""
    import psycopg2

    params = psycopg2.connect(postgres_url).get_dsn_parameters()
    monkeypatch.setenv("FEATUREHOUSE_PG_HOST", params.get("host", "127.0.0.1"))
    monkeypatch.setenv("FEATUREHOUSE_PG_PORT", params.get("port", "5432"))
    monkeypatch.setenv("FEATUREHOUSE_PG_USER", params.get("user", "postgres"))
    monkeypatch.setenv("FEATUREHOUSE_PG_DBNAME", params.get("dbname", "test"))
    monkeypatch.setenv("FEATUREHOUSE_PG_SCHEMA", "featurehouse_demo_test")
    project = copy_example(tmp_path)
    duck_project, duck_result = duckdb_demo
    run_demo(project, "postgres", "--end", history_end(duck_result.output))
    for model, key in (("fraud_model", ["transaction_id"]), ("recommender_model", ["interaction_id"])):
        pg = pq.read_table(project / ".featurehouse" / "training" / f"{model}.parquet").to_pylist()
        duck = pq.read_table(duck_project / ".featurehouse" / "training" / f"{model}.parquet").to_pylist()
        assert_same_rows(pg, duck, key)


@pytest.mark.spark
def test_the_demo_runs_green_on_spark_with_the_training_sets_duckdb_gives(spark_home, tmp_path):
    """`featurehouse demo --target spark`, as a user runs it (its own process: one SparkSession and one Derby
    metastore each): build, training sets, sync, the live phase, a vector over HTTP, every guard green; then
    DuckDB on the same history (--end) gives the same training sets."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    project = copy_example(tmp_path / "spark")
    env = {k: v for k, v in os.environ.items() if k not in ("FEATUREHOUSE_REDIS_URL", "FEATUREHOUSE_TARGET")}
    done = subprocess.run([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(project), "--target",
                           "spark", "demo", "--scale", SCALE], env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "every guardrail is green" in output and "served over HTTP with a bearer token" in output, output
    assert "the stream consumer landed" in output and "Traceback" not in output, output
    assert "Setting default log level" not in output and " WARN " not in output, output  # Spark logs errors only
    # `serve` on Spark loads the registry in a process of its own and ends it: while it serves, the other
    # commands still reach the local (one process at a time) metastore
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = [sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(project), "--target", "spark"]
    server = subprocess.Popen(base + ["serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()[-2000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        listed = subprocess.run(base + ["features", "list"], env=env, capture_output=True, text=True, timeout=300)
        assert listed.returncode == 0 and "user_txn_stats" in listed.stdout, listed.stdout + listed.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    duck = copy_example(tmp_path / "duckdb")
    run_demo(duck, None, "--end", history_end(output))
    from featurehouse.clock import naive_utc_value

    for model, key in (("fraud_model", ["transaction_id"]), ("recommender_model", ["interaction_id"])):
        spark = pq.read_table(project / ".featurehouse" / "training" / f"{model}.parquet").to_pylist()
        duckdb = pq.read_table(duck / ".featurehouse" / "training" / f"{model}.parquet").to_pylist()
        # a column the labels model casts to `timestamp` is an instant on Spark (TIMESTAMP), naive on DuckDB
        spark = [{k: naive_utc_value(v) for k, v in row.items()} for row in spark]
        assert_same_rows(spark, duckdb, key)


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
    run_demo(second, None, "--live-seconds", "0", "--no-serve")
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


# -- `demo --break X`: each guard fires on a breach made as in production (last: they change the demo's state) --

def test_break_freshness_runs_the_freshness_guard_past_the_slo_of_a_stopped_feed(duckdb_demo):
    from featurehouse.clock import utc_now
    from featurehouse.guard.freshness import view_freshness

    project, _ = duckdb_demo
    result = invoke(project, "demo", "--break", "freshness")
    assert result.exit_code == 0, result.output
    assert re.search(r"card_txn_stats@1: newest event is [\d.]+m old \(SLO 15\.0m\)", result.output)
    assert "`featurehouse freshness` exited 1" in result.output and "repair:" in result.output
    assert invoke(project, "freshness").exit_code == 0  # nothing was changed: only the guard's clock moved
    store = FeatureStore(project)
    try:  # and the plain guard says the same once the time has passed
        later = utc_now() + timedelta(minutes=20)
        rows = view_freshness([store.registry.view("card_txn_stats")], store.warehouse, store.online.client,
                              now=later, catalog=store.catalog)
        assert rows[0].status == "breach"
    finally:
        store.close()


def test_break_schema_changes_a_published_type_in_a_copy_and_check_fails_there(duckdb_demo):
    project, _ = duckdb_demo
    result = invoke(project, "demo", "--break", "schema")
    assert result.exit_code == 0, result.output
    assert "column 'seconds_since_previous_txn' changed type double precision -> BIGINT" in result.output
    copy = project / ".featurehouse" / "break-schema"
    assert invoke(copy, "check").exit_code == 1
    assert invoke(project, "check").exit_code == 0  # the project itself is untouched
    from featurehouse.demo.breaks import SCHEMA_FROM

    assert SCHEMA_FROM in (project / "models" / "features" / "card_txn_stats.sql").read_text()


def test_break_parity_writes_a_bad_value_online_and_restate_repairs_it(duckdb_demo):
    project, _ = duckdb_demo
    result = invoke(project, "demo", "--break", "parity")
    assert result.exit_code == 0, result.output
    found = re.search(r"entity (\d+): online (\d+), warehouse (\d+)", result.output)
    assert found and found.group(2) != found.group(3), result.output
    assert "`featurehouse parity` exited 1" in result.output
    run = invoke(project, "parity")
    assert run.exit_code == 1 and f"entity {found.group(1)}: online {found.group(2)}" in run.output
    assert invoke(project, "sync", "--restate", "user_txn_stats").exit_code == 0  # the repair the demo names
    assert invoke(project, "parity").exit_code == 0

