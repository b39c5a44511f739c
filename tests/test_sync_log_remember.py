"""A sync of every view reads the sync log once (`SyncRunLog.remember`: two queries), not three
queries per view; what it remembers is what asking per view gives, and stays so as runs finish."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from featurehouse.catalog import Catalog
from featurehouse.sync.runs import SyncRunLog

T0 = datetime(2026, 5, 1, 12)
KEYS = [("a", 1), ("a", 2), ("b", 1), ("never", 1)]


@pytest.fixture
def log(warehouse):
    schema = f"fh_remember_{uuid.uuid4().hex[:8]}"
    yield SyncRunLog(Catalog(warehouse, schema))
    warehouse.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(log: SyncRunLog, view: str, version: int, mode: str, minutes: int, status: str = "success",
        store: str = "s1") -> None:
    started = log.start(view, version, mode, None, T0 + timedelta(minutes=minutes),
                        watermarks={"src": T0 + timedelta(minutes=minutes)}, online_store=store)
    log.finish(started, status, at=T0 + timedelta(minutes=minutes, seconds=1))


def asked(log: SyncRunLog, store: str) -> dict:
    return {key: (log.last_success(*key, store), log.last_full_read(*key, store)) for key in KEYS}


def test_what_is_remembered_is_what_asking_per_view_gives(log):
    run(log, "a", 1, "full", 1)
    run(log, "a", 1, "incremental", 5)
    run(log, "a", 1, "incremental", 9, status="failed")  # not a success
    run(log, "a", 1, "reconcile", 7, store="s2")  # another online store
    run(log, "a", 2, "repair", 3)
    run(log, "b", 1, "incremental", 2, store="s2")
    fresh = SyncRunLog(log.catalog)
    expected = asked(fresh, "s1")
    assert expected[("a", 1)][0].watermark_to == T0 + timedelta(minutes=5)
    assert expected[("a", 1)][1] == T0 + timedelta(minutes=1, seconds=1)
    assert expected[("b", 1)] == (None, None) and expected[("never", 1)] == (None, None)
    log.remember("s1")
    assert asked(log, "s1") == expected
    assert asked(log, "s2") == asked(fresh, "s2")  # another store is asked, not remembered


def test_runs_finished_after_remembering_are_remembered_too(log):
    run(log, "a", 1, "full", 1)
    log.remember("s1")
    run(log, "a", 1, "incremental", 4)
    run(log, "b", 1, "reconcile", 6)
    run(log, "a", 2, "full", 8, status="failed")
    assert asked(log, "s1") == asked(SyncRunLog(log.catalog), "s1")
