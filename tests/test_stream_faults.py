"""The push path under faults: poison rows, entries that keep failing, a Redis outage (issue 10, 4 and 5).

Views here are built the way the registry builds them (registry_from_manifest over the warehouse's
description of the model), so their key types are the model's.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta
from typing import Callable

import pyarrow as pa
import pytest

from featurehouse.online.embedded import EmbeddedRedis
from featurehouse.registry.manifest import registry_from_manifest
from featurehouse.registry.model import Entity, FeatureView, Registry
from featurehouse.registry.snapshot import load_snapshot, save_snapshot
from featurehouse.stream.log import GROUP, LandingTableMismatch, dead_letter_key, landing_relation, stream_key
from tests.stores import store_over

T0 = datetime(2026, 5, 1, 12)
USER = Entity("user", ("user_id",))
MODEL = "user_activity"
COLUMNS = ("user_id bigint, event_time timestamp, created_at timestamp, clicks bigint, score float8, "
           "label varchar, small integer")


def _manifest() -> dict:
    block = {"entity": "user", "event_time": "event_time", "created_at": "created_at"}
    node = {"resource_type": "model", "name": MODEL, "unique_id": f"model.shop.{MODEL}",
            "config": {"meta": {"featurehouse": block}}, "columns": {}}
    return {"nodes": {node["unique_id"]: node}}


def _registry(warehouse) -> Registry:
    """The model built in the warehouse (a temporary table), and the registry read from its description."""
    warehouse.execute(f"DROP TABLE IF EXISTS {MODEL}")
    warehouse.execute(f"CREATE TEMPORARY TABLE {MODEL} ({COLUMNS})")
    warehouse.execute(f"INSERT INTO {MODEL} VALUES (1, TIMESTAMP '{T0.isoformat(sep=' ')}', "
                      f"TIMESTAMP '{T0.isoformat(sep=' ')}', 1, 0.5, 'batch', 1)")
    return registry_from_manifest(_manifest(), {"user": USER}, describe=warehouse.describe)


@pytest.fixture
def store(warehouse, redis_url):
    with store_over(_registry(warehouse), warehouse, redis_url, (_landing_name(),), sync=False) as s:
        yield s


def _landing_name() -> str:
    return f"stream__{MODEL}__v1"


def _view(store) -> FeatureView:
    return store.registry.view(MODEL)


def pushed(i: int, user: int | str = 1, **values) -> dict:
    return {"user_id": user, "event_time": (T0 + timedelta(seconds=i)).isoformat(), "clicks": i, "score": None,
            "label": None, "small": None, **values}


def field_of(reason: str) -> str:
    found = re.search(r"field '([^']+)'", reason)
    return found.group(1) if found else reason


def online(store, user: int):
    record = store.online.read("user", [(user,)], [(_view(store), 1)])[0][f"{MODEL}@1"]
    return record and record.values


def landing_rows(store) -> list[dict]:
    landing = landing_relation(_view(store), store.catalog.schema)
    return store.warehouse.fetch_arrow(
        f'select user_id, clicks, "__fh_stream_id" from "{landing.schema}"."{landing.identifier}" '
        "order by user_id, clicks").to_pylist()


def drain(consumer) -> None:
    while consumer.run_once():
        pass


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll until `check()` is true; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        threading.Event().wait(0.02)


# -- the registry carries key types -----------------------------------------------------------


def test_key_types_come_from_the_described_model_and_survive_the_snapshot(warehouse, tmp_path):
    view = _registry(warehouse).view(MODEL)
    assert [t.lower() for t in view.key_types if t] == ["bigint"]
    again = load_snapshot(save_snapshot(_registry(warehouse), tmp_path / "registry.pickle")).view(MODEL)
    assert again.key_types == view.key_types


# -- poison rows: coerced and served, or rejected naming the field ------------------------------


def test_integers_that_do_not_fit_their_column_are_rejected_naming_it(store):
    result = store.push(MODEL, [pushed(1, clicks=2**63), pushed(2, small=2**40), pushed(3, score=10**400),
                                pushed(4, user=2**63)])
    assert result.accepted == 0
    assert [(i, field_of(r)) for i, r in result.rejected] == [(0, "clicks"), (1, "small"), (2, "score"), (3, "user_id")]
    assert "outside the 32-bit range of integer" in result.rejected[1][1].lower()
    assert store.stream_consumer().run_once() == 0


def test_mixed_key_types_in_one_batch_are_one_entity_type(store):
    assert store.push(MODEL, [pushed(1, user=42), pushed(2, user="43")]).accepted == 2
    assert store.stream_consumer().run_once() == 2
    assert online(store, 42)["clicks"] == 1 and online(store, 43)["clicks"] == 2
    assert [(r["user_id"], r["clicks"]) for r in landing_rows(store)] == [(42, 1), (43, 2)]


def test_a_string_key_after_the_landing_table_exists(store):
    store.push(MODEL, [pushed(1, user=7)])
    drain(store.stream_consumer())
    result = store.push(MODEL, [pushed(2, user="8"), pushed(3, user="abc"), pushed(4, user="08"),
                                pushed(5, user=" 8")])
    assert result.accepted == 1
    assert [field_of(r) for _, r in result.rejected] == ["user_id"] * 3
    assert "'042' and 42 would be two different entities" in result.rejected[1][1]
    drain(store.stream_consumer())
    assert online(store, 8)["clicks"] == 2
    assert [(r["user_id"], r["clicks"]) for r in landing_rows(store)] == [(7, 1), (8, 2)]


def test_a_nul_byte_is_rejected_naming_the_field(store):
    result = store.push(MODEL, [pushed(1, label="a\x00b"), pushed(2, label="fine")])
    assert result.accepted == 1
    [(row, reason)] = result.rejected
    assert row == 0 and "field 'label': contains a NUL byte" in reason
    assert store.stream_consumer().run_once() == 1
    assert online(store, 1)["label"] == "fine"


def test_http_push_coerces_keys_and_names_the_field_it_rejects(store):
    from starlette.testclient import TestClient

    from featurehouse.stream.http import create_push_app

    client = TestClient(create_push_app(store, auth="none"))
    assert client.post(f"/v1/push/{MODEL}", json=[pushed(1, user="42")]).status_code == 202
    bad = client.post(f"/v1/push/{MODEL}", json=[pushed(2, user="042"), pushed(3, label="x\u0000")])
    assert bad.status_code == 422
    assert [(p["row"], p["field"]) for p in bad.json()["detail"]] == [(0, "user_id"), (1, "label")]
    assert store.stream_consumer().run_once() == 1 and online(store, 42)["clicks"] == 1


def test_a_first_push_with_a_string_key_keeps_sync_training_and_parity_working(store):
    assert store.push(MODEL, [{"user_id": "42", "event_time": T0.isoformat(), "clicks": 5, "score": 1.5, "label": None,
                               "small": None}]).accepted == 1
    drain(store.stream_consumer())
    landing = landing_relation(_view(store), store.catalog.schema)
    key_type = store.warehouse.describe(landing)["user_id"]
    assert key_type.lower() == "bigint"
    [run] = store.sync()
    assert run.status == "success", run
    spine = pa.table({"user_id": [42, 1], "ts": pa.array([T0 + timedelta(hours=1)] * 2, pa.timestamp("us"))})
    out = store.training_set_arrow(spine, [f"{MODEL}.clicks", f"{MODEL}.score"], timestamp="ts")
    assert out.column(f"{MODEL}__clicks").to_pylist() == [5, 1]
    [parity] = store.parity()
    assert (parity.compared, parity.mismatched) == (2, 0)


# -- entries that keep failing go to the dead letters; the consumer goes on ---------------------


def test_an_undecodable_entry_is_dead_lettered_after_n_deliveries_and_later_ones_apply(store):
    view = _view(store)
    bad_id = store.online.client.xadd(stream_key(view), {"r": b"\xc1 not a pushed row"}).decode()
    store.push(MODEL, [pushed(1, user=5)])
    consumer = store.stream_consumer()
    consumer.max_deliveries = 3
    assert consumer.run_once() == 1  # the good entry of the batch is applied, the bad one waits
    assert online(store, 5)["clicks"] == 1
    assert consumer.run_once() == 0 and store.online.client.xlen(dead_letter_key(view)) == 0
    assert consumer.run_once() == 1  # third delivery: dead-lettered
    [(_, dead)] = store.online.client.xrange(dead_letter_key(view))
    assert dead[b"stream_id"].decode() == bad_id and dead[b"deliveries"] == b"3"
    assert dead[b"reason"].decode().startswith(f"InvalidEntry: stream entry {bad_id} is not a pushed row")
    assert store.online.client.xpending(stream_key(view), GROUP)["pending"] == 0
    store.push(MODEL, [pushed(2, user=5)])
    assert consumer.run_once() == 1 and online(store, 5)["clicks"] == 2


def test_a_row_the_warehouse_refuses_is_never_served_and_is_dead_lettered(store):
    view = _view(store)
    store.push(MODEL, [pushed(1, user=1, score=0.5)])
    consumer = store.stream_consumer()
    drain(consumer)
    landing = landing_relation(view, store.catalog.schema)
    store.warehouse.execute(f'ALTER TABLE "{landing.schema}"."{landing.identifier}" ALTER COLUMN score SET NOT NULL')
    store.push(MODEL, [pushed(2, user=2, score=1.0), pushed(3, user=3), pushed(4, user=4, score=2.0)])
    assert consumer.run_once() == 2  # the batch fails; entry by entry, two of three apply
    assert online(store, 3) is None  # the warehouse refused it: never served
    assert online(store, 2)["clicks"] == 2 and online(store, 4)["clicks"] == 4
    for _ in range(consumer.max_deliveries - 1):
        consumer.run_once()
    [(_, dead)] = store.online.client.xrange(dead_letter_key(view))
    assert dead[b"deliveries"] == b"5" and b"score" in dead[b"reason"].lower()
    assert online(store, 3) is None and consumer.stats.dead_lettered == 1
    assert [r["user_id"] for r in landing_rows(store)] == [1, 2, 4]


def test_a_landing_table_made_with_another_key_type_is_reported_and_its_rows_wait(store):
    view = _view(store)
    landing = landing_relation(view, store.catalog.schema)
    store.warehouse.execute(f'CREATE SCHEMA IF NOT EXISTS "{landing.schema}"')
    store.warehouse.execute(f'CREATE TABLE "{landing.schema}"."{landing.identifier}" (user_id varchar, '
                            'event_time timestamp, created_at timestamp, clicks bigint, score float8, '
                            'label varchar, small integer, "__fh_stream_id" varchar)')
    store.push(MODEL, [pushed(1, user=9)])
    consumer = store.stream_consumer()
    assert consumer.run_once() == 0
    reason = consumer.set_aside[view.versioned_name]
    assert f"view '{MODEL}@1'" in reason and f"{landing.schema}.{landing.identifier}" in reason
    assert "column 'user_id' of type '" in reason and "view's key column is 'bigint'" in reason.lower()
    assert "'varchar'" in reason.lower() or "'character varying'" in reason
    assert store.online.client.xlen(stream_key(view)) == 1 and online(store, 9) is None  # waiting, not lost
    with pytest.raises(LandingTableMismatch, match="ALTER TABLE"):  # sync says so too, not a UNION type error
        store.sync()
    store.warehouse.execute(f'DROP TABLE "{landing.schema}"."{landing.identifier}"')
    assert consumer.run_once() == 1 and online(store, 9)["clicks"] == 1 and not consumer.set_aside


# -- a Redis outage: the consumer waits it out and resumes ---------------------------------------


@pytest.fixture
def restartable(warehouse, tmp_path):
    """A private Redis that persists (append-only file), so the stream survives a restart."""
    server = EmbeddedRedis(tmp_path / "redis", persist=True).start()
    try:
        with store_over(_registry(warehouse), warehouse, server.url, (_landing_name(),), sync=False) as s:
            yield s, server
    finally:
        server.stop()


def _run_in_thread(consumer, lines: list[str]) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop, 20), kwargs={"report": lines.append}, daemon=True)
    thread.start()
    return thread, stop


def test_the_consumer_survives_a_redis_restart_and_resumes(restartable):
    store, server = restartable
    lines: list[str] = []
    consumer = store.stream_consumer()
    thread, stop = _run_in_thread(consumer, lines)
    try:
        store.push(MODEL, [pushed(1, user=3), pushed(2, user=3)])
        wait_for("the first rows online", lambda: (online(store, 3) or {}).get("clicks") == 2)
        server.stop()  # SIGTERM: Redis writes its append-only file and exits
        wait_for("the outage to be reported", lambda: any("Redis unreachable" in line for line in lines))
        assert thread.is_alive()
        server.start()
        wait_for("Redis to be reported back", lambda: any("Redis is back" in line for line in lines))
        store.push(MODEL, [pushed(3, user=3), pushed(4, user=3)])
        wait_for("the rows pushed after the restart online", lambda: (online(store, 3) or {}).get("clicks") == 4)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(lines) == 2 and lines[0].startswith("Redis unreachable") and lines[1].startswith("Redis is back after")
    assert [r["clicks"] for r in landing_rows(store)] == [1, 2, 3, 4]  # each once
    assert consumer.stats.outages == 1


def test_entries_read_before_an_outage_are_applied_once_after_it(restartable):
    store, server = restartable
    view = _view(store)
    store.push(MODEL, [pushed(i, user=4) for i in range(1, 4)])
    consumer = store.stream_consumer()
    assert len(consumer._new(view, None)) == 3  # read, not applied: pending when Redis goes down
    server.stop()
    lines: list[str] = []
    thread, stop = _run_in_thread(consumer, lines)
    try:
        wait_for("the outage to be reported", lambda: bool(lines))
        server.start()
        wait_for("the pending rows online", lambda: (online(store, 4) or {}).get("clicks") == 3)
        store.push(MODEL, [pushed(4, user=4)])
        wait_for("a row pushed after the outage online", lambda: (online(store, 4) or {}).get("clicks") == 4)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert [r["clicks"] for r in landing_rows(store)] == [1, 2, 3, 4]
    assert store.online.client.xpending(stream_key(view), GROUP)["pending"] == 0


HOLD = ("import duckdb, sys, time\n"
        "while True:\n"
        "    try:\n"
        "        c = duckdb.connect(sys.argv[1]); break\n"
        "    except duckdb.IOException:\n"
        "        time.sleep(0.01)\n"
        "print('held', flush=True); sys.stdin.read()\n")


def test_a_held_warehouse_file_is_waited_out_and_no_valid_row_is_dead_lettered(tmp_path, redis_url):
    import subprocess
    import sys

    from featurehouse.offline.warehouse import DuckDBWarehouse

    path = tmp_path / "shop.duckdb"
    warehouse = DuckDBWarehouse(path, lock_timeout_s=0.3)
    warehouse.execute(f"CREATE TABLE {MODEL} ({COLUMNS})")  # a real table: a temporary one holds the file
    registry = registry_from_manifest(_manifest(), {"user": USER}, describe=warehouse.describe)
    with store_over(registry, warehouse, redis_url, sync=False) as store:
        consumer = store.stream_consumer(max_deliveries=1)  # one failed delivery would dead-letter it
        lines: list[str] = []
        thread, stop = _run_in_thread(consumer, lines)
        holder = None
        try:
            store.push(MODEL, [pushed(1, user=5)])
            wait_for("the first row online", lambda: (online(store, 5) or {}).get("clicks") == 1)
            holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            store.push(MODEL, [pushed(2, user=5)])
            wait_for("the held file to be reported", lambda: any("warehouse unreachable" in line for line in lines))
            assert (online(store, 5) or {}).get("clicks") == 1  # not served before the warehouse has it
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=30)
            wait_for("the row online once the file is free", lambda: (online(store, 5) or {}).get("clicks") == 2)
        finally:
            stop.set()
            thread.join(timeout=30)
            if holder is not None and holder.poll() is None:
                holder.kill()
        assert store.online.client.xlen(dead_letter_key(_view(store))) == 0
        assert any(line.startswith("The warehouse is back after") for line in lines), lines
    warehouse.close()
