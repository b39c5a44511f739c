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
    app = create_app(fuzz_registry(), ServeConfig(auth="none", push=True, redis_url=embedded_redis.url, max_ids=20))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen = fuzz(schema, max_examples=40)
    assert len(seen) >= 8 + 2 * len(fuzz_registry().view_names())  # the push route per view and per version
    # the fuzzer reached both answers and refusals, and pushed rows that were accepted
    assert any(200 <= s < 300 for codes in seen.values() for s in codes)
    assert any(400 <= s < 500 for codes in seen.values() for s in codes)
    assert 202 in seen["POST /v1/push/wide"]


def test_no_push_makes_the_push_api_fail(online):
    app = create_push_app(PushStore(fuzz_registry(), online), auth="none")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen = fuzz(schema, max_examples=60)
    assert {"POST /v1/push/{view}", "POST /v1/push/wide", "POST /v1/push/pair@1"} <= set(seen)
    assert all(202 in seen[f"POST /v1/push/{name}"] for name in fuzz_registry().view_names())


def test_the_push_document_describes_each_views_row(online):
    from starlette.testclient import TestClient

    spec = TestClient(create_push_app(PushStore(fuzz_registry(), online), auth="none")).get("/openapi.json").json()
    body = spec["paths"]["/v1/push/txn"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    row = body["oneOf"][0]["items"]
    assert row["required"] == ["user_id", "event_time", "count_1h", "amount"] and row["additionalProperties"] is False
    assert row["properties"]["count_1h"]["type"] == ["integer", "null"]
    assert row["properties"]["amount"]["type"] == ["number", "null"]


def governed_registry() -> Registry:
    """The fuzz registry under a policy: `profile` is pii, owned by team growth; `txn` is internal."""
    from dataclasses import replace

    from featurehouse.registry.model import Team

    r = fuzz_registry()
    r.teams = {"growth": Team("growth", ("gil",)), "risk": Team("risk", ("ana",))}
    for key, view in list(r.views.items()):
        r.views[key] = replace(view, owner="growth" if view.name == "profile" else "risk",
                               sensitivity="pii" if view.name == "profile" else "internal")
    return r


@pytest.mark.parametrize("who", ["no token", "a token of a principal denied the pii view", "a forged token"])
def test_fuzzing_with_and_without_tokens_finds_no_5xx_and_no_denied_feature(online, embedded_redis, who):
    """With tokens on, every operation fuzzed without a token, with a forged one, and with a read token of a
    principal the policy denies `profile` (pii): no 5xx, and no 200 that carries a value of `profile`."""
    from featurehouse.access.tokens import new_token
    from featurehouse.clock import utc_now

    secret, record = new_token("ana", "read,admin,metrics", timedelta(hours=1), utc_now())
    online.client.hset("fh:tokens", record.token_id, record.online_value())
    headers = {"no token": {}, "a forged token": {"Authorization": f"Bearer fht_{record.token_id}_{'A' * 43}"},
               "a token of a principal denied the pii view": {"Authorization": f"Bearer {secret}"}}[who]
    app = create_app(governed_registry(), ServeConfig(redis_url=embedded_redis.url, max_ids=20, log_sample_rate=0))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    leaked: list[str] = []
    codes: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        seen = codes.setdefault(operation.label, set())

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
        def call(case):
            response = case.call(headers=headers)
            seen.add(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code == 200 and "profile." in response.text and '"features"' in response.text:
                leaked.append(f"{case.method} {case.formatted_path} -> {response.text[:200]}")

        call()
    assert not leaked, leaked
    protected = [label for label in codes if label.startswith(("GET /v1/features", "POST /v1/features"))]
    if who != "a token of a principal denied the pii view":
        assert all(codes[label] == {401} for label in protected), codes  # nothing gets past a missing or forged token
    else:
        assert not any(401 in codes[label] for label in protected), codes  # a valid token always gets past auth
        from starlette.testclient import TestClient

        fresh = create_app(governed_registry(), ServeConfig(redis_url=embedded_redis.url, log_sample_rate=0))
        with TestClient(fresh) as client:  # and the pii view, asked for by name, is refused
            denied = client.get("/v1/features/user/1?names=profile.country", headers=headers)
        assert denied.status_code == 403 and denied.json()["feature"] == "profile@1"

