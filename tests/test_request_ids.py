"""Every HTTP response carries X-Request-ID; every 5xx names it in its body and in the server's log."""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from featurehouse.online.store import RedisOnlineStore
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.request_ids import client_request_id
from featurehouse.stream.http import create_push_app
from tests.test_serving import registry
from tests.test_serving_fuzz import PushStore

LOGGER = "featurehouse.serving"


async def _boom(*_args, **_kwargs):
    raise RuntimeError("boom: a bug in a handler")


@pytest.fixture
def app(embedded_redis):
    return create_app(registry(), ServeConfig(auth="none", push=True, redis_url=embedded_redis.url))


@pytest.fixture
def push_app(embedded_redis):
    online = RedisOnlineStore.from_url(embedded_redis.url)
    yield create_push_app(PushStore(registry(), online, timedelta(minutes=5)), auth="none")
    online.close()


def assert_logged_500(caplog, request_id: str) -> None:
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR and request_id in record.getMessage()
    assert record.exc_info is not None and "boom: a bug in a handler" in str(record.exc_info[1])
    # the traceback reaches down to the line that raised
    assert 'raise RuntimeError("boom: a bug in a handler")' in "".join(traceback.format_exception(*record.exc_info))


def test_every_response_carries_a_fresh_request_id(app, push_app):
    for client, path in ((TestClient(app), "/healthz"), (TestClient(app), "/v1/features/user/1?names=txn.count_1h"),
                         (TestClient(app), "/nope"), (TestClient(push_app), "/healthz")):
        ids = {client.get(path).headers["x-request-id"] for _ in range(3)}
        assert len(ids) == 3 and all(ids)


def test_a_sane_client_request_id_is_kept_and_anything_else_replaced(app):
    client = TestClient(app)
    assert client.get("/healthz", headers={"X-Request-ID": "trace-7f.a:1"}).headers["x-request-id"] == "trace-7f.a:1"
    for bad in ("", "a b", "x" * 129, "-leading", "semi;colon", "ünï"):
        got = client.get("/healthz", headers=[(b"X-Request-ID", bad.encode())]).headers["x-request-id"]
        assert got != bad and got


def test_client_request_id_reads_only_its_header():
    assert client_request_id([(b"host", b"x"), (b"x-request-id", b"abc")]) == b"abc"
    assert client_request_id([(b"host", b"x")]) is None
    assert client_request_id([(b"x-request-id", b"a\nb")]) is None


@pytest.mark.parametrize("call", [
    lambda c: c.get("/v1/features/user/1?names=txn.count_1h"),  # the fast path, outside Starlette
    lambda c: c.post("/v1/features/user:batchGet", json={"ids": ["1"], "names": ["txn.count_1h"]}),  # Starlette's
], ids=["vector", "batch"])
def test_a_handler_that_raises_is_a_json_500_naming_the_request_and_logged_with_its_traceback(app, call, caplog):
    app.state.reader.get = _boom
    response = call(TestClient(app))
    assert response.status_code == 500
    body, request_id = response.json(), response.headers["x-request-id"]
    assert body["request_id"] == request_id and body["error"] == "internal_error"
    assert "boom" not in response.text  # the exception is for the log, not the client
    assert_logged_500(caplog, request_id)


def test_a_push_api_handler_that_raises_is_a_json_500_naming_the_request(push_app, monkeypatch, caplog):
    import featurehouse.stream.log

    def boom(*_args, **_kwargs):
        raise RuntimeError("boom: a bug in a handler")

    monkeypatch.setattr(featurehouse.stream.log, "push", boom)
    row = {"user_id": 1, "event_time": "2026-01-01T00:00:00", "count_1h": 1, "amount": 1.0}
    response = TestClient(push_app).post("/v1/push/txn", json=[row], headers={"X-Request-ID": "client-1"})
    assert response.status_code == 500
    assert response.json()["request_id"] == response.headers["x-request-id"] == "client-1"
    assert_logged_500(caplog, "client-1")


def test_a_503_names_the_request_and_is_logged_with_its_cause(caplog):
    down = create_app(registry(), ServeConfig(auth="none", push=True, redis_url="redis://127.0.0.1:1/0", timeout_s=0.2))
    with caplog.at_level(logging.WARNING, LOGGER):
        response = TestClient(down).get("/v1/features/user/1?names=txn.count_1h")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    body, request_id = response.json(), response.headers["x-request-id"]
    assert body["request_id"] == request_id and body["error"] == "online_store_unavailable"
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert request_id in record.getMessage() and "online_store_unavailable" in record.getMessage()
