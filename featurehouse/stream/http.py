"""POST /v1/push/{view}: the push path over HTTP, mounted by the serving app (and `featurehouse push-api`)."""

from __future__ import annotations

import json
from datetime import timedelta

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from featurehouse.errors import UnknownFeature
from featurehouse.registry.model import Registry

MAX_ROWS = 10_000


def push_route(registry: Registry, redis_url: str | None = None, client: redis.Redis | None = None,
               max_clock_skew: timedelta | None = None) -> Route:
    """Rows are validated all together: one bad row rejects the request (422 naming row and field)."""
    if not client:
        assert redis_url is not None, "push_route needs a Redis client or URL"
        client = redis.Redis.from_url(redis_url)

    async def push_rows(request: Request) -> JSONResponse:
        name = request.path_params["view"]
        view_name, _, version = name.partition("@")
        try:
            view = registry.view(view_name, int(version) if version.isdigit() else None)
        except UnknownFeature as e:
            return JSONResponse({"error": "unknown_view", "detail": str(e)}, status_code=404)
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return JSONResponse({"error": "bad_json", "detail": f"request body is not JSON: {e}"}, status_code=400)
        except RecursionError:
            return JSONResponse({"error": "bad_json", "detail": "request body is nested too deeply"}, status_code=400)
        rows = body.get("rows") if isinstance(body, dict) else body
        if not isinstance(rows, list):
            return JSONResponse({"error": "bad_body", "detail": "send a JSON list of rows, or {\"rows\": [...]}"},
                                status_code=422)
        if len(rows) > MAX_ROWS:
            return JSONResponse({"error": "too_many_rows", "detail": f"at most {MAX_ROWS} rows per request"},
                                status_code=422)
        # imported at the first push, not when serving starts: validation and the stream writer load
        # pyarrow and sqlglot, which a serving worker that is never pushed to does not need
        from featurehouse.stream.log import push
        from featurehouse.stream.rows import MAX_CLOCK_SKEW, InvalidRow, validate

        skew = max_clock_skew or MAX_CLOCK_SKEW

        problems = []
        for i, row in enumerate(rows):
            try:
                validate(view, row, max_clock_skew=skew)
            except InvalidRow as e:
                problems.append({"row": i, "field": e.field, "detail": str(e)})
        if problems:
            return JSONResponse({"error": "invalid_rows", "detail": problems}, status_code=422)
        try:
            result = await run_in_threadpool(push, client, view, rows, None, skew)
        except redis.RedisError as e:
            return JSONResponse({"error": "online_store_unavailable", "detail": str(e)}, status_code=503,
                                headers={"Retry-After": "1"})
        return JSONResponse({"view": view.versioned_name, "accepted": result.accepted}, status_code=202)

    return Route("/v1/push/{view}", push_rows, methods=["POST"])


def create_push_app(store) -> Starlette:
    """A small app of its own (`featurehouse push-api`): the push route, a health check and its OpenAPI
    document; request ids on every response and every 5xx logged with its id, as in `featurehouse serve`."""
    from featurehouse.serving.openapi import push_api_spec
    from featurehouse.serving.request_ids import RequestIds

    spec = push_api_spec(store.registry, MAX_ROWS)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def openapi(_: Request) -> JSONResponse:
        return JSONResponse(spec)

    return Starlette(routes=[push_route(store.registry, client=store.online.client, max_clock_skew=store.max_clock_skew),
                             Route("/healthz", healthz, methods=["GET"]),
                             Route("/openapi.json", openapi, methods=["GET"])],
                     middleware=[Middleware(RequestIds)])
