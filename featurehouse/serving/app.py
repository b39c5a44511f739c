"""The serving HTTP app (ASGI, Starlette): feature vectors with freshness, health, metrics, OpenAPI.

The hot routes are lean Starlette handlers with orjson bodies and one redis.asyncio round trip; every
error a user can cause is a JSON body with a 4xx status, and an unreachable or slow online store is a
503 with Retry-After, after which the app keeps serving once the store is back (no restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Callable, Sequence
from urllib.parse import parse_qsl, unquote, urlencode

import orjson
import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from featurehouse.access.audit import AuditBuffer, write_events_async
from featurehouse.access.http import SCOPE_KEY as PRINCIPAL
from featurehouse.access.http import HttpAuth, Refusal, is_ui_path, route_path, route_template
from featurehouse.access.policy import AccessDenied
from featurehouse.errors import FeaturehouseError, InvalidRequest, UnknownEntity, UnknownFeature
from featurehouse.online.connect import async_client_from_url
from featurehouse.online.keys import MATERIALIZER
from featurehouse.online.replicas import ReplicaReadsConfig, ReplicaRouter, replica_client
from featurehouse.registry.model import FeatureRef, Registry
from featurehouse.serving.near_cache import NearCache, NearCacheConfig
from featurehouse.serving.openapi import openapi_spec
from featurehouse.serving.reader import MAX_IDS, AsyncOnlineReader
from featurehouse.serving.request_ids import HEADER as REQUEST_ID_HEADER
from featurehouse.serving.request_ids import RequestIds, Reraise, keep_internal
from featurehouse.serving.served_log import ServedLog
from featurehouse.serving.vectors import Freshness, json_default
from featurehouse.stream.http import (
    BODY_TIMEOUT_S,
    MAX_BODY_BYTES,
    MAX_PUSH_BODY_BYTES,
    MAX_ROWS,
    STORE_UNAVAILABLE,
    BodyRefused,
    push_route,
    read_body,
)

MAX_DEFINITIONS = 1000  # pending feature definitions kept in the online store


def _env(name: str, default, cast):
    """A limit's default: FEATUREHOUSE_<NAME> as `featurehouse serve` hands it to its workers (checked
    there), else the built-in default."""
    value = os.environ.get(f"FEATUREHOUSE_{name.upper()}")
    return default if value is None else cast(value)


@dataclass(frozen=True)
class ServeConfig:
    redis_url: str
    max_ids: int = MAX_IDS
    timeout_s: float = 0.5  # an online-store call slower than this is a 503
    retry_after_s: int = 1
    log_sample_rate: float = 0.01  # share of served vectors logged for skew and drift checks
    max_clock_skew_s: float = 300.0  # pushed event times further ahead of the clock are refused
    auth: str = "token"  # bearer tokens; "none" only on loopback (checked where the server binds)
    push: bool = False  # mount POST /v1/push/{view} (off unless enabled: serving is read-only by default)
    # Limits against denial of service (docs/security.md). A serve worker takes them from the environment
    # its parent set (FEATUREHOUSE_MAX_BODY_BYTES, ...); elsewhere the defaults stand unless given.
    max_body_bytes: int = field(default_factory=lambda: _env("max_body_bytes", MAX_BODY_BYTES, int))
    max_push_body_bytes: int = field(default_factory=lambda: _env("max_push_body_bytes", MAX_PUSH_BODY_BYTES, int))
    body_timeout_s: float = field(default_factory=lambda: _env("body_timeout_s", BODY_TIMEOUT_S, float))
    max_definitions: int = field(default_factory=lambda: _env("max_definitions", MAX_DEFINITIONS, int))
    near_cache: NearCacheConfig | None = None  # hot entities kept per worker, bounded by their views' SLOs
    replica_reads: ReplicaReadsConfig | None = None  # cluster replicas read while proven within max_lag_s


class JSON(Response):
    """orjson renders the vector dataclasses itself; non-finite floats become null, decimals strings."""

    media_type = "application/json"
    internal: str | None = None  # a 5xx's cause: logged with the request id (request_ids.INTERNAL_DETAIL), never sent

    def render(self, content) -> bytes:
        return orjson.dumps(content, default=json_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)

    async def __call__(self, scope, receive, send) -> None:
        if self.internal:
            keep_internal(scope, self.internal)
        await super().__call__(scope, receive, send)


def _error(status: int, code: str, detail, headers: dict | None = None) -> JSON:
    return JSON({"error": code, "detail": detail}, status_code=status, headers=headers)


def _store_down(cause: str, retry_after_s: int = 1) -> JSON:
    """The 503 of an unreachable or slow online store. Its body names no host, port or driver message
    (they would map the internal network for anyone who can reach serving); `cause` goes to the log line
    of the request, with its id."""
    out = _error(503, "online_store_unavailable", STORE_UNAVAILABLE, {"Retry-After": str(retry_after_s)})
    out.internal = f"online store: {cause}"
    return out


def _cause(e: BaseException) -> str:
    """An online-store failure for the log: its class and the driver's message (a timeout has none)."""
    return f"{type(e).__name__}: {e}" if str(e) else f"{type(e).__name__} (no answer in time)"


class Metrics:
    """Prometheus metrics. Per-value counts go to plain dicts on the hot path and are added to counters
    once a second and at each scrape (`flush`): no label lookups or locks per request.

    With several workers, `featurehouse serve` sets PROMETHEUS_MULTIPROC_DIR: every worker's counters
    and histograms are then files that any worker's /metrics adds up (prometheus_client's multiprocess
    mode), so a scrape sees the whole server, whichever worker answers it."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        self.latency = Histogram("featurehouse_request_seconds", "Request latency", ["route"], registry=self.registry,
                                 buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
        self.errors = Counter("featurehouse_errors_total", "Errors by class", ["error"], registry=self.registry)
        self.store_errors = Counter("featurehouse_online_store_errors_total", "Online store errors", registry=self.registry)
        # requests refused before routing (401 no or bad token, 403 a missing scope), by route template: a
        # client with an expired token shows up here before anyone reads the audit log
        self.refused = Counter("featurehouse_requests_refused", "Requests refused by authentication",
                               ["status", "route"], registry=self.registry)
        self.served_total = Counter("featurehouse_values_served", "Feature values served", ["view"], registry=self.registry)
        self.stale_total = Counter("featurehouse_stale_values_served", "Stale values served", ["view"],
                                   registry=self.registry)
        self.nulls_total = Counter("featurehouse_null_values_served", "Null values served", ["feature"],
                                   registry=self.registry)
        self.near_hits = Counter("featurehouse_near_cache_hits", "Entity reads answered by the worker's near-cache",
                                 registry=self.registry)
        self.near_misses = Counter("featurehouse_near_cache_misses", "Entity reads the near-cache sent to Redis",
                                   registry=self.registry)
        self.near_age = Histogram("featurehouse_near_cache_age_seconds", "Age of replies served from the near-cache (a sample)",
                                  registry=self.registry, buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0))
        self.near_cache: NearCache | None = None
        self.replica_reads = Counter("featurehouse_replica_reads", "Entity reads answered by a replica proven within "
                                     "replica_reads.max_lag_s", registry=self.registry)
        self.primary_reads = Counter("featurehouse_primary_reads", "Entity reads sent to a primary while replica_reads "
                                     "is on (no replica proven close enough, or the replica failed)",
                                     registry=self.registry)
        self.replicas: ReplicaRouter | None = None
        self._spellings: dict[str, tuple[str, str]] = {}
        self.served: dict[str, int] = {}
        self.stale: dict[str, int] = {}
        self.nulls: dict[str, int] = {}
        self.views: list[tuple[str, float]] = []  # (view@N, SLO seconds) of online views with an SLO
        self.freshness = Freshness()
        if self.multiprocess:
            from prometheus_client import multiprocess

            self.scrape_registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.scrape_registry)
        else:
            self.scrape_registry = self.registry
        self.scrape_registry.register(_MaterializerLag(self))

    def _labels(self, name: str) -> tuple[str, str]:
        """(view, view.column) of a feature as the request spelled it (` a.b`, `a.b@01`): labels are the feature's,
        so clients cannot mint new metric series by spelling one feature many ways."""
        labels = self._spellings.get(name)
        if labels is None:
            ref = FeatureRef.parse(name)
            labels = (ref.view, f"{ref.view}.{ref.column}")
            if len(self._spellings) >= 10_000:
                self._spellings.clear()
            self._spellings[name] = labels
        return labels

    def observe(self, vectors) -> None:
        served, stale, nulls = self.served, self.stale, self.nulls
        for vector in vectors:
            for name, value in vector.features.items():
                view, feature = self._labels(name)
                served[view] = served.get(view, 0) + 1
                if value.stale:
                    stale[view] = stale.get(view, 0) + 1
                if value.value is None:
                    nulls[feature] = nulls.get(feature, 0) + 1

    def flush(self) -> None:
        """Move the counts gathered since the last flush into the counters."""
        for counts, counter in ((self.served, self.served_total), (self.stale, self.stale_total),
                                (self.nulls, self.nulls_total)):
            for key in list(counts):
                counter.labels(key).inc(counts.pop(key))
        near = self.near_cache
        if near is not None:
            hits, misses, near.hits, near.misses = near.hits, near.misses, 0, 0
            self.near_hits.inc(hits)
            self.near_misses.inc(misses)
            ages = near.drain_ages()
            for age in ages[::max(1, len(ages) // 1000)]:  # a sample: observing every hit would cost the hot path
                self.near_age.observe(age)
        router = self.replicas
        if router is not None:
            on_replica, on_primary, router.replica_reads, router.primary_reads = (
                router.replica_reads, router.primary_reads, 0, 0)
            self.replica_reads.inc(on_replica)
            self.primary_reads.inc(on_primary)

    def value_counts(self) -> tuple[dict[str, float], dict[str, float]]:
        """Values served per view and null values served per feature since the server started, every worker's
        (read as a scrape reads them): the web catalog's health."""
        self.flush()
        served: dict[str, float] = {}
        nulls: dict[str, float] = {}
        for family in self.scrape_registry.collect():
            into, label = {"featurehouse_values_served": (served, "view"),
                           "featurehouse_null_values_served": (nulls, "feature")}.get(family.name, (None, ""))
            if into is None:
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = sample.labels.get(label, "")
                    into[key] = into.get(key, 0.0) + sample.value
        return served, nulls

    def render(self) -> bytes:
        self.flush()
        return generate_latest(self.scrape_registry)


class _MaterializerLag:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        # the same lag serving judges staleness by (and `featurehouse freshness` reports)
        now = time.time()
        lag = GaugeMetricFamily("featurehouse_view_materializer_lag_seconds",
                                "How far the view's sync or stream consumer lags", labels=["view"])
        breach = GaugeMetricFamily("featurehouse_view_materializer_breach",
                                   "1 when the view's materializer lags past its freshness SLO", labels=["view"])
        for view, slo in self.metrics.views:
            if self.metrics.freshness.materialized(view):
                seconds = self.metrics.freshness.lag(view, now)
                lag.add_metric([view], seconds)
                breach.add_metric([view], 1.0 if seconds > slo else 0.0)
        yield lag
        yield breach


def create_app(registry: Registry, config: ServeConfig,
               pages: Callable[[AsyncOnlineReader, HttpAuth, Metrics], Sequence[Route]] | None = None) -> ServingApp:
    """The serving API; `pages` adds routes given the app's reader, authentication and metrics (the web
    catalog, featurehouse/ui, which the worker's composition root, featurehouse/serving/asgi.py, mounts)."""
    # No socket_timeout: redis-py would wrap every read in asyncio.wait_for, a task per call. A slow store
    # is bounded by asyncio.timeout around the request's read instead, which costs a timer, not a task.
    client = async_client_from_url(config.redis_url, socket_connect_timeout=config.timeout_s)
    reader = AsyncOnlineReader(registry, client, max_ids=config.max_ids)
    auth = HttpAuth(config.auth, client, config.timeout_s)
    reader.audit = audit = AuditBuffer("http")
    metrics = Metrics()
    if config.near_cache is not None:
        reader.near_cache = metrics.near_cache = NearCache(config.near_cache)
    if config.replica_reads is not None:
        # probes and the slot map on a sync client of their own, on the router's thread: the event loop never waits
        reader.replicas = metrics.replicas = ReplicaRouter(
            replica_client(config.redis_url, config.timeout_s), config.replica_reads,
            read_timeout_s=config.timeout_s / 2, owns_client=True)
    metrics.views = [(v.versioned_name, v.freshness_slo.total_seconds()) for v in registry.views.values()
                     if v.online and v.freshness_slo]
    spec: dict = {}  # built at its first request: see `openapi`
    served_log = ServedLog(config.log_sample_rate)

    async def log_served(vectors, model) -> None:
        """After the response went out: sampled vectors are buffered and written 100 at a time."""
        if served_log.add(vectors, model):
            await flush_served()

    async def flush_served() -> None:
        """A store error here costs the buffered samples, never a request."""
        try:
            await served_log.flush_async(client)
        except (redis.RedisError, OSError):
            metrics.store_errors.inc()

    async def flush_periodically() -> None:
        while True:
            await asyncio.sleep(served_log.flush_every_s)
            await flush_served()

    async def flush_metrics_periodically() -> None:
        while True:
            await asyncio.sleep(1.0)
            metrics.flush()
            await flush_audit()

    async def flush_audit() -> None:
        """Once a second: what was read of restricted views and what was refused, to the audit stream. A store
        error keeps the events for the next second (bounded: the counts merge, refusals are aggregated)."""
        if not audit:
            return
        events = audit.drain()
        try:
            async with asyncio.timeout(config.timeout_s):
                await write_events_async(client, events)
        except (redis.RedisError, OSError, asyncio.TimeoutError):
            metrics.store_errors.inc()
            for event in events[:10_000]:
                audit.note(event)

    async def read(entity_type, ids, names, model, principal: str):
        try:
            async with asyncio.timeout(config.timeout_s):
                return await reader.get(entity_type, ids, names, model, principal)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as e:
            metrics.store_errors.inc()
            raise _StoreDown(str(e) or type(e).__name__) from None

    vector_latency = metrics.latency.labels("vector")

    async def vector(request: Request) -> Response:
        """The Starlette form of the vector route; `ServingApp` answers it first (same judgements)."""
        started = time.perf_counter()
        names, model = vector_query(request.scope.get("query_string", b""))
        out = await _answer(metrics, read(request.path_params["entity_type"], [_entity_id(request)], names, model,
                                          request.scope[PRINCIPAL].principal))
        if isinstance(out, list):
            metrics.observe(out)
            out = JSON(out[0], background=BackgroundTask(log_served, out, model) if served_log.rate else None)
        vector_latency.observe(time.perf_counter() - started)
        return out

    async def fast_vector(scope, send, entity_type: str, entity_id: str, request_id: bytes,
                          principal: str) -> Response | None:
        """The vector's 200 is sent here, X-Request-ID and all, with no wrapper around `send`; an error
        is returned for `ServingApp` to send through its request-id wrapper (a 5xx is logged there)."""
        started = time.perf_counter()
        names, model = vector_query(scope["query_string"])
        out = await _answer(metrics, read(entity_type, [entity_id], names, model, principal))
        if not isinstance(out, list):
            vector_latency.observe(time.perf_counter() - started)
            return out
        metrics.observe(out)
        body = orjson.dumps(out[0], default=json_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (REQUEST_ID_HEADER, request_id)]})
        await send({"type": "http.response.body", "body": body})
        vector_latency.observe(time.perf_counter() - started)
        if served_log.rate:
            await log_served(out, model)
        return None

    async def batch(request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = orjson.loads(await read_body(request, config.max_body_bytes, config.body_timeout_s))
        except BodyRefused as e:
            return JSON(e.body(), status_code=e.status)
        except orjson.JSONDecodeError as e:
            return _error(400, "bad_json", f"request body is not JSON: {e}")
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            return _error(422, "bad_body", 'send {"ids": [...], "names": [...]} or {"ids": [...], "model": "..."}')
        names, model = body.get("names"), body.get("model")
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            return _error(422, "bad_body", "names must be a list of strings")
        if model is not None and not isinstance(model, str):
            return _error(422, "bad_body", "model must be a string")
        if not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in body["ids"]):
            return _error(422, "bad_body", "ids must be strings or integers")
        out = await _answer(metrics, read(request.path_params["entity_type"], [str(i) for i in body["ids"]], names, model,
                                          request.scope[PRINCIPAL].principal))
        if isinstance(out, list):
            metrics.observe(out)
            out = JSON({"vectors": out}, background=BackgroundTask(log_served, out, model) if served_log.rate else None)
        metrics.latency.labels("batch").observe(time.perf_counter() - started)
        return out

    async def post_definition(request: Request) -> Response:
        from featurehouse.serving import definitions as d

        try:
            body = orjson.loads(await read_body(request, config.max_body_bytes, config.body_timeout_s))
        except BodyRefused as e:
            return JSON(e.body(), status_code=e.status)
        except orjson.JSONDecodeError as e:
            return _error(400, "bad_json", f"request body is not JSON: {e}")
        checked = d.validate(body, registry)
        if isinstance(checked, d.Verdict):
            return JSON(checked.body, status_code=checked.status)
        try:
            async with asyncio.timeout(config.timeout_s):
                pending = d.load_pending(await client.hgetall(d.PENDING))
                verdict = d.judge(checked, registry, pending)
                if verdict.status == 201:  # new: stored as pending if within max_definitions
                    verdict = await d.add_pending(client, checked, verdict, config.max_definitions)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as e:
            metrics.store_errors.inc()
            return _store_down(_cause(e), config.retry_after_s)
        return JSON(verdict.body, status_code=verdict.status)

    async def list_definitions(request: Request) -> Response:
        from featurehouse.serving import definitions as d

        try:
            async with asyncio.timeout(config.timeout_s):
                pending = d.load_pending(await client.hgetall(d.PENDING))
        except (redis.RedisError, OSError, asyncio.TimeoutError) as e:
            metrics.store_errors.inc()
            return _store_down(_cause(e), config.retry_after_s)
        items = d.listing(registry, pending)
        name = request.path_params.get("name")
        if name is not None:
            items = [i for i in items if i["name"] == name]
            if not items:
                return _error(404, "not_found", f"unknown feature view '{name}'")
        return JSON({"definitions": items})

    async def healthz(_: Request) -> Response:
        return JSON({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            async with asyncio.timeout(config.timeout_s):
                await client.ping()
            return JSON({"status": "ready"})
        except (redis.RedisError, OSError, asyncio.TimeoutError) as e:
            metrics.store_errors.inc()
            return _store_down(_cause(e), config.retry_after_s)

    async def prometheus(_: Request) -> Response:
        try:
            async with asyncio.timeout(config.timeout_s):
                metrics.freshness = Freshness.from_hash(await client.hgetall(MATERIALIZER))
        except (redis.RedisError, OSError, asyncio.TimeoutError):
            metrics.store_errors.inc()  # the lag gauges keep their last known values
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(_: Request) -> Response:
        """Built when first asked for: describing each view's push rows loads the type system (pyarrow,
        sqlglot), which a serving worker otherwise never needs."""
        if not spec:
            spec.update(openapi_spec(config.max_ids, registry, MAX_ROWS, push=config.push, auth=config.auth != "none"))
        return JSON(spec)

    async def docs(_: Request) -> Response:
        return HTMLResponse(_docs_html(), headers=DOCS_HEADERS)

    async def docs_static(request: Request) -> Response:
        """One of the few Swagger UI files /docs names (a fixed list: no path from the request reaches the disk)."""
        asset = _docs_asset(request.path_params["name"])
        if asset is None:
            return _error(404, "not_found", f"GET {request.url.path}: no such documentation asset")
        return asset.response(request.headers)

    async def not_found(request: Request, exc) -> Response:
        """404 and 405 as JSON; a 405 keeps the `Allow` header Starlette worked out (RFC 9110)."""
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "http_error",
                      f"{request.method} {request.url.path}: {exc.detail}", getattr(exc, "headers", None))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        flusher = asyncio.create_task(flush_periodically()) if served_log.rate else None
        counting = asyncio.create_task(flush_metrics_periodically())
        yield
        counting.cancel()
        metrics.flush()
        await flush_audit()
        if flusher is not None:
            flusher.cancel()
            await flush_served()
        if reader.replicas is not None:
            await reader.replicas.aclose()
        await client.aclose()

    pushing = [push_route(registry, config.redis_url, max_clock_skew=timedelta(seconds=config.max_clock_skew_s),
                          max_body_bytes=config.max_push_body_bytes, body_timeout_s=config.body_timeout_s)
               ] if config.push else []
    app = Starlette(routes=[
        Route("/v1/features/{entity_type}/{entity_id}", vector, methods=["GET"]),
        Route("/v1/features/{entity_type}:batchGet", batch, methods=["POST"]),
        Route("/v1/feature-definitions", post_definition, methods=["POST"]),
        Route("/v1/feature-definitions", list_definitions, methods=["GET"]),
        Route("/v1/feature-definitions/{name}", list_definitions, methods=["GET"]),
        *pushing,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/static/{name}", docs_static, methods=["GET"]),
        *(pages(reader, auth, metrics) if pages is not None else ()),
    ], exception_handlers={404: not_found, 405: not_found}, lifespan=lifespan)
    app.state.reader = reader
    return ServingApp(app, fast_vector, auth, audit, metrics)


class ServingApp:
    """The ASGI entry point: `GET /v1/features/{type}/{id}` is answered here, straight from the scope;
    everything else goes to Starlette.

    The vector route is nearly all the traffic, and Starlette's routing, request object, query
    multidict and response class cost as much per request as the Redis round trip does
    (bench/serve.py). Ids are taken from the raw path, percent-decoded once, so an id may hold `/`.
    """

    PREFIX = b"/v1/features/"

    def __init__(self, starlette: Starlette, fast_vector, auth: HttpAuth, audit: AuditBuffer, metrics: Metrics):
        self.starlette, self._fast_vector, self.auth, self.audit = starlette, fast_vector, auth, audit
        self.metrics = metrics
        self.state = starlette.state  # what tests and the SDK reach through the app
        self.routes = starlette.routes
        # every response of either path carries an X-Request-ID and every 5xx is logged with it
        self._ids = RequestIds(starlette)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self._ids(scope, receive, send)
            return
        who = await self.auth.authenticate(scope)
        if isinstance(who, Refusal):
            if who.status in (401, 403):
                route = route_template(route_path(scope))
                self.audit.note_refused(who.principal or "unauthenticated", f"{scope['method']} {route}", who.detail)
                self.metrics.refused.labels(str(who.status), route).inc()
            path = route_path(scope)
            if who.status == 401 and scope["method"] == "GET" and is_ui_path(path) and not path.startswith("/ui/api/"):
                # a person at a browser: the catalog's sign-in page, then back here
                await self._ids.run(RedirectResponse("/ui/login?" + urlencode({"next": path}), status_code=303),
                                    scope, receive, send, self._ids.assign(scope))
                return
            await self._ids.run(_refused(who), scope, receive, send, self._ids.assign(scope))
            return
        scope[PRINCIPAL] = who
        if scope["method"] == "GET":
            raw = scope.get("raw_path") or scope["path"].encode("utf-8")
            if raw.startswith(self.PREFIX):
                entity_type, sep, entity_id = raw[len(self.PREFIX):].partition(b"/")
                if sep and entity_type and entity_id and b"/" not in entity_id:
                    # a 200 goes straight out; an error or an exception through the request-id wrapper
                    request_id = self._ids.assign(scope)
                    try:
                        out = await self._fast_vector(scope, send, unquote(entity_type.decode("latin-1")),
                                                      unquote(entity_id.decode("latin-1")), request_id, who.principal)
                    except Exception as e:  # noqa: BLE001 - logged with its traceback and answered as a 500 by `run`
                        out = Reraise(e)
                    if out is not None:
                        await self._ids.run(out, scope, receive, send, request_id)
                    return
        await self._ids(scope, receive, send)


@lru_cache(maxsize=4096)
def vector_query(query: bytes) -> tuple[list[str] | None, str | None]:
    """`names=a,b&model=m` -> (names, model); the last value of a repeated parameter wins, as in
    Starlette. Cached: model servers send the same few query strings over and over."""
    names = model = None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == "names":
            names = value
        elif name == "model":
            model = value
    return ([n for n in names.split(",") if n] if names else None), (model or None)


def _entity_id(request: Request) -> str:
    """The id path segment decoded exactly once (servers differ in what they decode before routing)."""
    raw = request.scope.get("raw_path")
    if raw:
        return unquote(raw.decode("latin-1").rsplit("/", 1)[-1])
    return request.path_params["entity_id"]


class _StoreDown(Exception):
    pass


def _refused(refusal: Refusal) -> Response:
    return Response(refusal.body(), status_code=refusal.status, media_type="application/json",
                    headers={k.decode(): v.decode() for k, v in refusal.headers})


async def _answer(metrics: Metrics, awaitable):
    """The vectors, or the JSON error a user (or a down store) gets instead of a traceback."""
    try:
        return await awaitable
    except _StoreDown as e:
        metrics.errors.labels("online_store_unavailable").inc()
        return _store_down(str(e))
    except AccessDenied as e:
        metrics.errors.labels("AccessDenied").inc()
        d = e.decision
        return JSON({"error": "forbidden", "detail": str(e), "principal": d.principal, "feature": d.view,
                     "sensitivity": d.sensitivity, "model": d.model, "remedy": d.remedy}, status_code=403)
    except (UnknownEntity, UnknownFeature) as e:
        metrics.errors.labels(type(e).__name__).inc()
        return _error(404, "not_found", str(e))
    except (InvalidRequest, FeaturehouseError) as e:
        metrics.errors.labels(type(e).__name__).inc()
        return _error(422, "invalid_request", str(e))


# /docs is Swagger UI served from this server: its files come from the swagger-ui-bundle-v2 package (the
# swagger-ui-dist release, byte for byte), so the page works offline and loads nothing from another origin
# (its Content-Security-Policy says so to the browser too). The ?v= names the release: after an upgrade
# browsers fetch the new files although they cache them for a day.
DOCS_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>featurehouse serving API</title>
<link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png?v={v}">
<link rel="stylesheet" href="/docs/static/swagger-ui.css?v={v}"></head>
<body><div id="ui"></div><script src="/docs/static/swagger-ui-bundle.js?v={v}"></script>
<script src="/docs/static/docs-init.js?v={v}"></script>
<noscript>The API description is at <a href="/openapi.json">/openapi.json</a>.</noscript></body></html>"""
DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}
# name -> content type; the only files /docs/static/ serves
DOCS_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "docs-init.js": "text/javascript; charset=utf-8",
}
_DOCS_INIT = (b'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", deepLinking: true});\n')


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None  # text files, compressed once
    content_type: str
    etag: str

    def response(self, headers) -> Response:
        """The file, gzipped if the client takes it (each encoding its own ETag); 304 if the client has it."""
        gzipped = self.gzipped is not None and "gzip" in headers.get("accept-encoding", "")
        etag = f'{self.etag[:-1]}-gz"' if gzipped else self.etag
        common = {"ETag": etag, "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff",
                  "Vary": "Accept-Encoding"}
        if etag in headers.get("if-none-match", ""):
            return Response(status_code=304, headers=common)
        if gzipped:
            return Response(self.gzipped, media_type=self.content_type, headers={**common, "Content-Encoding": "gzip"})
        return Response(self.body, media_type=self.content_type, headers=common)


@lru_cache(maxsize=1)
def _docs_html() -> str:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return DOCS_HTML.format(v="missing")
    return DOCS_HTML.format(v=swagger_ui_path.name.rpartition("-")[2])


def _docs_asset(name: str) -> _Asset | None:
    """The file `name` of the list (None for any other name, or when the package is missing). Other names
    never reach the cache: they cannot evict the files and make each request read and compress them anew."""
    return _load_docs_asset(name) if name in DOCS_ASSETS else None


@lru_cache(maxsize=len(DOCS_ASSETS))
def _load_docs_asset(name: str) -> _Asset | None:
    """The listed file `name`, read and compressed once."""
    import gzip
    import hashlib

    content_type = DOCS_ASSETS[name]
    if name == "docs-init.js":
        body = _DOCS_INIT
    else:
        try:
            from swagger_ui_bundle import swagger_ui_path
        except ImportError:
            return None
        path = swagger_ui_path / name
        if not path.is_file():
            return None
        body = path.read_bytes()
    gzipped = gzip.compress(body, 6, mtime=0) if content_type.startswith("text/") else None
    return _Asset(body, gzipped, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
