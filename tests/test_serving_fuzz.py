"""Fuzz the HTTP apps from their own OpenAPI documents: no input a user can send yields a 5xx.

`featurehouse serve` and `featurehouse push-api` both describe the push body per view (its columns and
their JSON types), so the fuzzer sends rows that reach validation and the stream, not just junk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from featurehouse.online.store import OnlineRow, RedisOnlineStore
from featurehouse.registry.model import Feature, FeatureView, Registry, Relation
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.vectors import utcnow
from featurehouse.stream.http import create_push_app
from tests.test_serving import USER, registry

# a view with a column of every type family a pushed value can be judged by
WIDE_TYPES = ("boolean", "smallint", "hugeint", "real", "decimal(18,2)", "varchar", "date", "timestamp",
              "timestamptz", "integer[]", "struct(a integer)", "interval", "blob", "json", "time", "uuid")


def fuzz_registry() -> Registry:
    r = registry()
    r.add(FeatureView("wide", 1, USER, Relation(None, None, "wide"), "event_time",
                      tuple(Feature("wide", f"c{i}", t, 1) for i, t in enumerate(WIDE_TYPES))))
    return r


@dataclass
class PushStore:
    """What `create_push_app` takes of a FeatureStore."""

    registry: Registry
    online: RedisOnlineStore
    max_clock_skew: timedelta = timedelta(minutes=5)


def fuzz(schema, max_examples: int) -> dict[str, set[int]]:
    """Every operation of the document, `max_examples` cases each; the status codes seen per operation."""
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        seen[operation.label] = fuzz_operation(operation, max_examples)
    return seen


def fuzz_operation(operation, max_examples: int) -> set[int]:
    """One operation's cases, each checked to be no 5xx; the status codes it answered."""
    codes: set[int] = set()

    @given(case=operation.as_strategy())
    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    def call(case):
        response = case.call()
        codes.add(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    call()
    return codes


@pytest.fixture(scope="module")
def online(embedded_redis):
    store = RedisOnlineStore.from_url(embedded_redis.url)
    store.write(registry().view("txn"), [OnlineRow((1,), utcnow() - timedelta(seconds=5), None, (1, 2.0))])
    yield store
    store.close()


def test_no_request_makes_the_server_fail(online, embedded_redis):
    app = create_app(fuzz_registry(), ServeConfig(redis_url=embedded_redis.url, max_ids=20))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen = fuzz(schema, max_examples=40)
    assert len(seen) >= 8 + 2 * len(fuzz_registry().view_names())  # the push route per view and per version
    # the fuzzer reached both answers and refusals, and pushed rows that were accepted
    assert any(200 <= s < 300 for codes in seen.values() for s in codes)
    assert any(400 <= s < 500 for codes in seen.values() for s in codes)
    assert 202 in seen["POST /v1/push/wide"]


def test_no_push_makes_the_push_api_fail(online):
    app = create_push_app(PushStore(fuzz_registry(), online))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen = fuzz(schema, max_examples=60)
    assert {"POST /v1/push/{view}", "POST /v1/push/wide", "POST /v1/push/pair@1"} <= set(seen)
    assert all(202 in seen[f"POST /v1/push/{name}"] for name in fuzz_registry().view_names())


def test_the_push_document_describes_each_views_row(online):
    from starlette.testclient import TestClient

    spec = TestClient(create_push_app(PushStore(fuzz_registry(), online))).get("/openapi.json").json()
    body = spec["paths"]["/v1/push/txn"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    row = body["oneOf"][0]["items"]
    assert row["required"] == ["user_id", "event_time"] and row["additionalProperties"] is False
    assert row["properties"]["count_1h"]["type"] == ["integer", "null"]
    assert row["properties"]["amount"]["type"] == ["number", "null"]
