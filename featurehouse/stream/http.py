"""POST /v1/push/{view}: the push path over HTTP (an ASGI app; serving will mount it too)."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from featurehouse.errors import UnknownFeature
from featurehouse.stream.log import push
from featurehouse.stream.rows import InvalidRow, validate

MAX_ROWS = 10_000


def create_push_app(store) -> Starlette:
    """Rows are validated all together: one bad row rejects the request (422 naming row and field)."""

    async def push_rows(request: Request) -> JSONResponse:
        name = request.path_params["view"]
        view_name, _, version = name.partition("@")
        try:
            view = store.registry.view(view_name, int(version) if version.isdigit() else None)
        except UnknownFeature as e:
            return JSONResponse({"error": "unknown_view", "detail": str(e)}, status_code=404)
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return JSONResponse({"error": "bad_json", "detail": f"request body is not JSON: {e}"}, status_code=400)
        rows = body.get("rows") if isinstance(body, dict) else body
        if not isinstance(rows, list):
            return JSONResponse({"error": "bad_body", "detail": "send a JSON list of rows, or {\"rows\": [...]}"},
                                status_code=422)
        if len(rows) > MAX_ROWS:
            return JSONResponse({"error": "too_many_rows", "detail": f"at most {MAX_ROWS} rows per request"},
                                status_code=422)
        problems = []
        for i, row in enumerate(rows):
            try:
                validate(view, row)
            except InvalidRow as e:
                problems.append({"row": i, "field": e.field, "detail": str(e)})
        if problems:
            return JSONResponse({"error": "invalid_rows", "detail": problems}, status_code=422)
        result = push(store.online.client, view, rows)
        return JSONResponse({"view": view.versioned_name, "accepted": result.accepted}, status_code=202)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/v1/push/{view}", push_rows, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"])])
