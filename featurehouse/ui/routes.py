"""The catalog under /ui in `featurehouse serve`: pages rendered by the server (search and paging done
here, so a page of a 10,000-feature catalog costs what a small one does), freshness live from the online
store's marks, a JSON search for scripts, and the stylesheet. Behind the API's own authentication (scope
`read`); with `auth: none` on loopback, open."""

from __future__ import annotations

import time
from importlib import resources
from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from featurehouse.registry.model import Registry
from featurehouse.serving.reader import AsyncOnlineReader
from featurehouse.serving.vectors import Freshness
from featurehouse.ui.catalog import PER_PAGE, CatalogIndex
from featurehouse.ui.health import from_marks
from featurehouse.ui.pages import Renderer, ServerLinks

# pages load nothing but the stylesheet; the search form submits to the catalog itself
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}
STYLESHEET = "ui.css"


def catalog_pages(registry: Registry, project: str = "") -> Callable[[AsyncOnlineReader], list[Route]]:
    """The catalog's routes for `create_app(..., pages=)`: freshness from the app's reader, as serving holds
    the materializer marks (read again when due)."""

    def pages(reader: AsyncOnlineReader) -> list[Route]:
        async def marks() -> Freshness:
            await reader.refresh_if_due()
            return reader.freshness

        return ui_routes(registry, marks, project)

    return pages


def ui_routes(registry: Registry, marks: Callable[[], Awaitable[Freshness]], project: str = "") -> list[Route]:
    """Routes of the catalog; `marks` gives the materializer marks. The index is built at the first
    request, not at a worker's start."""
    links = ServerLinks("/ui")
    built: dict[str, Renderer] = {}

    def renderer() -> Renderer:
        if "r" not in built:
            built["r"] = Renderer(CatalogIndex(registry), project)
        return built["r"]

    async def catalog(request: Request) -> Response:
        query = request.query_params.get("q", "")
        return HTMLResponse(renderer().catalog(links, query, _page(request)), headers=HEADERS)

    async def view(request: Request) -> Response:
        r = renderer()
        entry = r.index.views.get(request.path_params["name"])
        if entry is None:
            return HTMLResponse(r.catalog(links, request.path_params["name"]), status_code=404, headers=HEADERS)
        panel = from_marks(registry.view(entry.name, entry.version), await marks(), time.time())
        return HTMLResponse(r.view(links, entry, panel), headers=HEADERS)

    async def search(request: Request) -> Response:
        """The catalog's search as JSON: features matching every word of `q`, a page at a time."""
        page = renderer().index.search(request.query_params.get("q", ""), _page(request),
                                       _whole(request.query_params.get("per_page"), PER_PAGE, 500))
        return JSONResponse({"total": page.total, "page": page.page, "pages": page.pages,
                             "features": [{"name": f.name, "view": f.view, "version": f.version,
                                           "data_type": f.data_type, "description": f.description}
                                          for f in page.items]})

    async def stylesheet(_: Request) -> Response:
        css = (resources.files("featurehouse.ui") / "static" / STYLESHEET).read_bytes()
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300",
                                                             "X-Content-Type-Options": "nosniff"})

    return [Route("/ui", catalog, methods=["GET"]), Route("/ui/views/{name}", view, methods=["GET"]),
            Route("/ui/api/search", search, methods=["GET"]),
            Route(f"/ui/static/{STYLESHEET}", stylesheet, methods=["GET"])]


def _page(request: Request) -> int:
    return _whole(request.query_params.get("page"), 1, 1_000_000)


def _whole(text: str | None, default: int, most: int) -> int:
    """A page number or size from the query string; anything else is the default (a page is not an error)."""
    try:
        return min(max(1, int(text)), most) if text else default
    except ValueError:
        return default
