"""The fixture dbt project (tests/dbt_fixture) copied into a test's directory with its raw data loaded."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from featurehouse.offline.warehouse import DuckDBWarehouse
from tests import fixture_data

REPO = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "dbt_fixture"


@contextlib.contextmanager
def fixture_project(directory: Path) -> Iterator[Path]:
    """A copy installing the repo as its featurehouse package, on its own DuckDB file (not built yet)."""
    path = directory / "fixture"
    shutil.copytree(FIXTURE, path, ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", "*.duckdb"))
    (path / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("FH_FIXTURE_DUCKDB", str(path / "fixture.duckdb"))
    try:
        with DuckDBWarehouse(path / "fixture.duckdb") as wh:
            for name, table in fixture_data.tables(fixture_data.make()).items():
                wh.replace_table("fh_raw", name, table)
        yield path
    finally:
        mp.undo()
