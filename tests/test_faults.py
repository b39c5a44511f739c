"""Fault injection: the whole write path under SIGKILLs, Redis restarts, restores, freezes, a held
DuckDB file and poison rows, on both engines; after the documented recovery the online store equals
the oracle and nothing served as `ok` during the run was wrong (tests/chaos.py says how).

Marked `faults`; `.ci/run` runs them. `bench/chaos.py` runs the same for longer.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pytest

from tests.chaos import Engine, chaos

pytestmark = [pytest.mark.faults, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SECONDS = float(os.environ.get("FEATUREHOUSE_CHAOS_SECONDS", "30"))


def _engine(name: str, request) -> Engine:
    if name == "duckdb":
        return Engine("duckdb")
    url = urlparse(request.getfixturevalue("postgres_url"))
    pg = {"host": url.hostname or "127.0.0.1", "port": url.port or 5432, "user": url.username or "postgres",
          "dbname": (url.path or "/postgres").lstrip("/")}
    return Engine("postgres", pg, tag=f"_{os.getpid()}")


@pytest.mark.parametrize("engine_name", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_nothing_lost_and_nothing_served_wrong_under_faults(tmp_path, engine_name, request):
    engine = _engine(engine_name, request)
    with chaos(tmp_path, engine, seed=int(os.environ.get("FEATUREHOUSE_CHAOS_SEED", "7")), log=print) as run:
        report = run.run(SECONDS)
    print(report.summary())
    assert set(report.faults) >= set(run.kinds()), report.summary()  # every kind of fault, at least once
    assert report.samples > 100 and report.values_checked > 0, report.summary()
    assert not report.wrong_served_ok, report.wrong_served_ok[:5]
    assert not report.wrong_final, report.wrong_final[:5]
    assert not report.lost_pushes, report.lost_pushes[:5]
    assert not report.missing_dead_letters, report.missing_dead_letters[:5]
