"""Fuzz the serving API from its own OpenAPI document: no input a user can send yields a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from featurehouse.online.store import OnlineRow, RedisOnlineStore
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.vectors import utcnow
from tests.test_serving import registry


@pytest.fixture(scope="module")
def api_schema(embedded_redis):
    store = RedisOnlineStore.from_url(embedded_redis.url)
    store.write(registry().view("txn"), [OnlineRow((1,), utcnow() - timedelta(seconds=5), None, (1, 2.0))])
    app = create_app(registry(), ServeConfig(redis_url=embedded_redis.url, max_ids=20))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    store.close()


def test_no_request_makes_the_server_fail(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    seen = {}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            response = case.call()
            seen.setdefault(operation.label, set()).add(response.status_code)
            assert response.status_code < 500 or response.status_code == 503, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")

        call()
    # the fuzzer reached both answers and refusals
    assert any(200 <= s < 300 for codes in seen.values() for s in codes)
    assert any(400 <= s < 500 for codes in seen.values() for s in codes)
