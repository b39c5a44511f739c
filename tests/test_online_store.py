"""The online store on a real Redis: exact type round-trips and the event-time guard under racing writers."""

from __future__ import annotations

import math
import os
import random
import threading
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import redis

from featurehouse.online.embedded import EmbeddedRedis
from featurehouse.online.store import OnlineRow, RedisOnlineStore
from featurehouse.registry.model import Entity, Feature, FeatureView, Relation

T0 = datetime(2026, 5, 1, 12, 0, 0, 123456)
USER = Entity("user", ("user_id",))
PAIR = Entity("card_merchant", ("card_id", "merchant_id"))
SERVER_URL = os.environ.get("FEATUREHOUSE_TEST_REDIS_URL")


def make_view(name="stats", columns=("a", "b"), entity=USER, version=1):
    return FeatureView(name, version, entity, Relation(None, None, name), "event_time",
                       tuple(Feature(name, c, "any", version) for c in columns), created_at="created_at")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server


@pytest.fixture(params=["embedded", "server"])
def store(request, embedded):
    """The embedded server always; the machine's Redis too when FEATUREHOUSE_TEST_REDIS_URL is set."""
    if request.param == "embedded":
        client = redis.Redis(unix_socket_path=str(embedded.socket))
    else:
        if not SERVER_URL:
            pytest.skip("Redis server tests skipped: set FEATUREHOUSE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15)")
        client = redis.Redis.from_url(SERVER_URL)
    client.flushdb()
    s = RedisOnlineStore(client)
    yield s
    client.flushdb()
    s.close()


def read_one(store, view, key):
    return store.read(view.entity.name, [key], [(view, view.version)])[0][view.versioned_name]


VALUES = [
    42, -(2 ** 63), 2 ** 63 - 1, 3.141592653589793, 1e-300, float("inf"), float("-inf"), True, False,
    "", "ünïcödé 日本 🚀", "quote\" and 'single'", T0, datetime(1969, 12, 31, 23, 59, 59, 999999),
    None, [0.1, -2.5, 1e10], [], date(2026, 2, 28), Decimal("12345.678901234567890"),
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_values_round_trip_exactly_with_their_types(store, value):
    view = make_view(columns=("v",))
    store.write(view, [OnlineRow((1,), T0, T0, (value,))])
    got = read_one(store, view, (1,)).values["v"]
    assert got == value and type(got) is type(value)


def test_nan_round_trips_as_nan(store):
    view = make_view(columns=("v",))
    store.write(view, [OnlineRow((1,), T0, None, (float("nan"),))])
    assert math.isnan(read_one(store, view, (1,)).values["v"])


def test_event_and_created_times_are_kept(store):
    view = make_view()
    store.write(view, [OnlineRow((7,), T0, T0 + timedelta(seconds=3), (1, "x"))])
    record = read_one(store, view, (7,))
    assert (record.event_time, record.created_at, record.values) == (T0, T0 + timedelta(seconds=3), {"a": 1, "b": "x"})


def test_an_older_event_never_replaces_a_newer_one(store):
    view = make_view()
    assert store.write(view, [OnlineRow((1,), T0, T0, (2, "new"))]).written == 1
    result = store.write(view, [OnlineRow((1,), T0 - timedelta(microseconds=1), T0 + timedelta(days=1), (1, "old"))])
    assert (result.written, result.skipped_older) == (0, 1)
    assert read_one(store, view, (1,)).values == {"a": 2, "b": "new"}


def test_equal_event_time_greater_created_at_wins(store):
    view = make_view()
    store.write(view, [OnlineRow((1,), T0, T0, (1, "first")), OnlineRow((1,), T0, T0 + timedelta(hours=1), (2, "fix"))])
    store.write(view, [OnlineRow((1,), T0, None, (3, "no created_at"))])
    assert read_one(store, view, (1,)).values == {"a": 2, "b": "fix"}


def test_rewriting_the_same_rows_changes_nothing(store):
    view = make_view()
    rows = [OnlineRow((k,), T0, T0, (k, str(k))) for k in range(50)]
    assert store.write(view, rows).written == 50
    assert store.write(view, rows).skipped_older == 50


def test_one_read_returns_every_view_of_every_key(store):
    a, b = make_view("a_view", ("x",)), make_view("b_view", ("y",))
    store.write(a, [OnlineRow((1,), T0, None, (10,))])
    store.write(b, [OnlineRow((1,), T0, None, ("b1",)), OnlineRow((2,), T0, None, ("b2",))])
    out = store.read("user", [(1,), (2,), (3,)], [(a, 1), (b, 1)])
    assert [(r["a_view@1"] and r["a_view@1"].values, r["b_view@1"] and r["b_view@1"].values) for r in out] == [
        ({"x": 10}, {"y": "b1"}), (None, {"y": "b2"}), (None, None)]


def test_versions_are_separate(store):
    v1, v2 = make_view(version=1), make_view(version=2)
    store.write(v1, [OnlineRow((1,), T0, None, (1, "v1"))])
    store.write(v2, [OnlineRow((1,), T0 - timedelta(days=1), None, (2, "v2"))])
    assert read_one(store, v1, (1,)).values["b"] == "v1" and read_one(store, v2, (1,)).values["b"] == "v2"


def test_composite_and_unicode_keys_with_separators(store):
    view = make_view(entity=PAIR, columns=("v",))
    keys = [(1, "a|b"), (1, "a"), ("1", "a%7Cb"), (2, "{x}"), (3, "日本")]
    store.write(view, [OnlineRow(k, T0, None, (i,)) for i, k in enumerate(keys)])
    got = store.read("card_merchant", keys, [(view, 1)])
    # ("1", ...) and (1, ...) are one entity: keys are text online, as they arrive from a URL
    assert [g["stats@1"].values["v"] for g in got] == [0, 1, 2, 3, 4]


def test_racing_writers_leave_the_newest_truth(store):
    """Several clients write shuffled histories of the same entities at once; the oracle is max(event, created)."""
    view = make_view()
    rnd = random.Random(3)
    history = [OnlineRow((rnd.randint(0, 19),), T0 + timedelta(seconds=rnd.randint(0, 30)),
                         T0 + timedelta(seconds=rnd.randint(0, 30)) if rnd.random() > 0.1 else None,
                         (i, f"row{i}")) for i in range(3000)]
    # make (key, event, created) unique, so exactly one row is the truth for each key
    unique = {(r.key, r.event_time, r.created_at): r for r in history}
    rows = list(unique.values())
    pool = store.client.connection_pool

    def writer(seed):
        mine = rows[:]
        random.Random(seed).shuffle(mine)
        own = redis.ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs)
        RedisOnlineStore(redis.Redis(connection_pool=own)).write(view, mine, batch_size=97)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key in {r.key for r in rows}:
        mine = [r for r in rows if r.key == key]
        best = max(mine, key=lambda r: (r.event_time, r.created_at or datetime.min))
        assert read_one(store, view, key).values == {"a": best.values[0], "b": best.values[1]}


def test_embedded_server_persists_and_stops_cleanly(tmp_path):
    view = make_view()
    with RedisOnlineStore.embedded_in(tmp_path) as store:
        store.write(view, [OnlineRow((1,), T0, None, (5, "kept"))])
        pid = store.embedded.process.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # no orphan left behind
    with RedisOnlineStore.embedded_in(tmp_path) as store:
        assert read_one(store, view, (1,)).values == {"a": 5, "b": "kept"}


def test_a_second_store_shares_a_live_embedded_server(tmp_path):
    with RedisOnlineStore.embedded_in(tmp_path) as owner:
        other = RedisOnlineStore.embedded_in(tmp_path)
        assert other.embedded.process is None  # it did not start a second server
        assert other.ping()
        other.close()
        assert owner.ping()


def test_a_redis_cluster_holds_each_entity_in_one_slot_and_guards_writes(redis_cluster_url):
    """Every write and read crosses slots in one pipeline; the guard still holds on every node."""
    store = RedisOnlineStore.from_url(redis_cluster_url)
    a, b = make_view("a_view", ("x",), entity=PAIR), make_view("b_view", ("y",), entity=PAIR)
    keys = [(i, f"m{i % 7}") for i in range(300)]
    assert store.write(a, [OnlineRow(k, T0, None, (i,)) for i, k in enumerate(keys)]).written == 300
    assert store.write(b, [OnlineRow(k, T0, None, (str(i),)) for i, k in enumerate(keys)]).written == 300
    older = store.write(a, [OnlineRow(k, T0 - timedelta(days=1), None, (-1,)) for k in keys])
    assert (older.written, older.skipped_older) == (0, 300)
    got = store.read("card_merchant", keys, [(a, 1), (b, 1)])
    assert [(g["a_view@1"].values["x"], g["b_view@1"].values["y"]) for g in got] == [(i, str(i)) for i in range(300)]
    slots = {store.client.keyslot(k) for k in store.client.scan_iter(match="fh:{card_merchant:*")}
    assert len(slots) > 50  # entities spread over the cluster
    assert store.delete_matching("fh:{card_merchant:1|*}") == 1
    store.close()


def test_an_acl_user_connects_with_credentials_in_the_url(embedded):
    admin = redis.Redis(unix_socket_path=str(embedded.socket))
    admin.acl_setuser("fh_writer", enabled=True, passwords=["+s3cret"], keys=["*"], channels=["*"],
                      commands=["+@all"])
    try:
        store = RedisOnlineStore.from_url(f"unix://fh_writer:s3cret@{embedded.socket}")
        view = make_view(columns=("v",))
        store.write(view, [OnlineRow((9,), T0, None, ("via acl",))])
        assert read_one(store, view, (9,)).values == {"v": "via acl"}
        store.close()
        with pytest.raises(Exception, match="(?i)password|auth"):
            RedisOnlineStore.from_url(f"unix://fh_writer:wrong@{embedded.socket}")
    finally:
        admin.acl_deluser("fh_writer")


def test_a_tls_server_is_reached_with_rediss(tmp_path):
    """rediss:// with the server's CA: the same store over TLS."""
    import shutil
    import socket
    import subprocess
    import time

    from featurehouse.online.embedded import server_binary

    if not shutil.which("openssl"):
        pytest.skip("TLS test skipped: no openssl to make a certificate")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([server_binary(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(tmp_path / "cert.pem"), "--tls-key-file", str(tmp_path / "key.pem"),
                             "--tls-ca-cert-file", str(tmp_path / "cert.pem"), "--tls-auth-clients", "no",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tmp_path / 'cert.pem'}"
        for _ in range(200):
            if proc.poll() is not None:
                pytest.skip("TLS test skipped: this Redis server was built without TLS")
            try:
                store = RedisOnlineStore.from_url(url)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.02)
        else:
            pytest.fail("TLS Redis server did not answer")
        view = make_view(columns=("v",))
        store.write(view, [OnlineRow((1,), T0, None, ("over tls",))])
        assert read_one(store, view, (1,)).values == {"v": "over tls"}
        store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=5)
