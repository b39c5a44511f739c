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
