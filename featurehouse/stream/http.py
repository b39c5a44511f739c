"""POST /v1/push/{view}: the push path over HTTP, mounted by the serving app (and `featurehouse push-api`).

Also the request-body reader every body-taking route of both apps uses (`read_body`): a body is read
no further than its route's limit and no longer than a deadline, so a client cannot make a worker
buffer hundreds of megabytes or hold a request open by sending its body a byte at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import TYPE_CHECKING

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from featurehouse.errors import UnknownFeature
from featurehouse.online.connect import client_from_url
from featurehouse.registry.model import Registry

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

MAX_ROWS = 10_000
# Request-body limits (settings of `featurehouse serve`; options of `featurehouse push-api`).
MAX_BODY_BYTES = 1 << 20  # batchGet and feature definitions: 1 MiB is ~50,000 ids
MAX_PUSH_BODY_BYTES = 16 << 20  # a push may carry MAX_ROWS rows: 16 MiB is ~1.6 KiB a row
BODY_TIMEOUT_S = 10.0  # the whole body must arrive within this (a slow-body client holds a connection)
STORE_UNAVAILABLE = "online store unreachable or slow"  # all a 503 body says; the cause goes to the log


class BodyRefused(Exception):
    """A request body the server stops reading: too large (413) or too slow to arrive (408)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail

    def body(self) -> dict:
        return {"error": self.code, "detail": self.detail}


def body_too_large(limit: int) -> BodyRefused:
    return BodyRefused(413, "body_too_large", f"request body too large: send at most {limit} bytes")


async def read_body(request: Request, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The request's body, or BodyRefused. A Content-Length over `limit` is refused before a byte of the
    body is read; a body without one (chunked), or longer than it says, is cut off as soon as it passes
    `limit`; a body still arriving after `timeout_s` is refused (408)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s), contextlib.aclosing(request.stream()) as stream:
            async for chunk in stream:
                size += len(chunk)
                if size > limit:
                    raise body_too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefused(408, "body_timeout", f"the request body did not arrive within {timeout_s:g} s") from None
    return b"".join(chunks)


def push_route(registry: Registry, redis_url: str | None = None, client: redis.Redis | RedisCluster | None = None,
               max_clock_skew: timedelta | None = None, max_body_bytes: int = MAX_PUSH_BODY_BYTES,
               body_timeout_s: float = BODY_TIMEOUT_S) -> Route:
    """Rows are validated all together: one bad row rejects the request (422 naming row and field; a row
    lacking features also lists them all in `missing`). A body over `max_body_bytes` is a 413, refused
    before it is read."""
    if not client:
        assert redis_url is not None, "push_route needs a Redis client or URL"
        client = client_from_url(redis_url)

    async def push_rows(request: Request) -> JSONResponse:
        name = request.path_params["view"]
        view_name, _, version = name.partition("@")
        try:
            view = registry.view(view_name, int(version) if version.isdigit() else None)
        except UnknownFeature as e:
            return JSONResponse({"error": "unknown_view", "detail": str(e)}, status_code=404)
        try:
            body = json.loads(await read_body(request, max_body_bytes, body_timeout_s))
        except BodyRefused as e:
            return JSONResponse(e.body(), status_code=e.status)
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
        from featurehouse.stream.rows import MAX_CLOCK_SKEW, InvalidRow, MissingFeatures, validate

        skew = max_clock_skew or MAX_CLOCK_SKEW

        problems = []
        for i, row in enumerate(rows):
            try:
                validate(view, row, max_clock_skew=skew)
            except InvalidRow as e:
                problems.append({"row": i, "field": e.field, "detail": str(e),
                                 **({"missing": list(e.missing)} if isinstance(e, MissingFeatures) else {})})
        if problems:
            return JSONResponse({"error": "invalid_rows", "detail": problems}, status_code=422)
        try:
            result = await run_in_threadpool(push, client, view, rows, None, skew)
        except (redis.RedisError, OSError) as e:
            from featurehouse.serving.request_ids import keep_internal

            keep_internal(request.scope, f"{type(e).__name__}: {e}")  # host, port, driver message: the log only
            return JSONResponse({"error": "online_store_unavailable", "detail": STORE_UNAVAILABLE}, status_code=503,
                                headers={"Retry-After": "1"})
        return JSONResponse({"view": view.versioned_name, "accepted": result.accepted}, status_code=202)

    return Route("/v1/push/{view}", push_rows, methods=["POST"])


def create_push_app(store, max_body_bytes: int = MAX_PUSH_BODY_BYTES, body_timeout_s: float = BODY_TIMEOUT_S,
                    auth: str = "token") -> Starlette:
    """A small app of its own (`featurehouse push-api`): the push route, a health check and its OpenAPI
    document; request ids on every response and every 5xx logged with its id, as in `featurehouse serve`;
    bearer tokens with the push scope (for the view, or all), unless `auth` is "none" (loopback only)."""
    from featurehouse.access.http import AuthGate, HttpAuth
    from featurehouse.serving.openapi import push_api_spec
    from featurehouse.serving.request_ids import RequestIds

    spec = push_api_spec(store.registry, MAX_ROWS, auth=auth != "none")

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def openapi(_: Request) -> JSONResponse:
        return JSONResponse(spec)

    return Starlette(routes=[push_route(store.registry, client=store.online.client, max_clock_skew=store.max_clock_skew,
                                        max_body_bytes=max_body_bytes, body_timeout_s=body_timeout_s),
                             Route("/healthz", healthz, methods=["GET"]),
                             Route("/openapi.json", openapi, methods=["GET"])],
                     middleware=[Middleware(RequestIds), Middleware(AuthGate, auth=HttpAuth(auth, store.online.client))])
