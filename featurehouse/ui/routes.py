"""The catalog under /ui in `featurehouse serve`: pages rendered by the server (search and paging done
here, so a page of a 10,000-feature catalog costs what a small one does), freshness live from the online
store's marks, a JSON search for scripts, and the stylesheet. Behind the API's own authentication (scope
`read`); with `auth: none` on loopback, open."""

from __future__ import annotations

import asyncio
import posixpath
import time
from importlib import resources
from typing import Awaitable, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.exceptions import NoPermissionError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from featurehouse.access.http import UI_COOKIE, HttpAuth, Refusal
from featurehouse.registry.model import Registry
from featurehouse.serving.app import Metrics
from featurehouse.serving.reader import AsyncOnlineReader
from featurehouse.serving.vectors import Freshness
from featurehouse.ui.catalog import PER_PAGE, CatalogIndex
from featurehouse.ui.health import LIVE, from_marks
from featurehouse.ui.observed import HASHES, Observed, observed_from_hashes
from featurehouse.ui.pages import Renderer, ServerLinks
from featurehouse.ui.verdicts import judge

# pages load nothing but the stylesheet; the search form submits to the catalog itself
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}
STYLESHEET = "ui.css"
SIGN_IN_S = 8 * 3600  # a sign-in lasts a working day (or less: the token's own expiry is checked at each page)
MAX_FORM_BYTES = 4096
OBSERVED_S = 1.0  # the guards' observations are read again at most this often (as serving's marks are)
READ_TIMEOUT_S = 2.0


def unreadable(error: BaseException) -> str:
    """Why a page shows no guard results, in words a reader can act on (no host or driver detail)."""
    if isinstance(error, NoPermissionError):
        return ("The guards' results (parity, deploy checks, lag history) are not readable by this server's Redis "
                "user: apply `featurehouse online acl` again (the serving user reads fh:model_records, "
                "fh:guard_results and fh:lag_history since this version).")
    return ("The guards' results (parity, deploy checks, lag history) could not be read from the online store just "
            "now; freshness below is serving's own.")


def catalog_pages(registry: Registry, project: str = "") -> Callable[[AsyncOnlineReader, HttpAuth, Metrics], list[Route]]:
    """The catalog's routes for `create_app(..., pages=)`: freshness from the app's reader, as serving holds
    the materializer marks (read again when due); the guards' observations from the online store (read
    when a page asks, at most once a second); served counts from the app's metrics; sign-in checked by the
    app's own authentication."""

    def pages(reader: AsyncOnlineReader, auth: HttpAuth, metrics: Metrics) -> list[Route]:
        async def marks() -> Freshness:
            await reader.refresh_if_due()
            return reader.freshness

        cache: dict[str, tuple[float, Observed]] = {}

        async def observations() -> Observed:
            at, seen = cache.get("o", (0.0, None))
            if seen is None or time.monotonic() - at >= OBSERVED_S:
                try:
                    async with asyncio.timeout(READ_TIMEOUT_S):
                        async with reader.client.pipeline(transaction=False) as pipe:
                            for key in HASHES:
                                pipe.hgetall(key)
                            seen = observed_from_hashes(await pipe.execute())
                except (redis.RedisError, OSError, asyncio.TimeoutError) as e:
                    # the pages still show what serving knows (freshness from its marks), and say what is missing
                    seen = Observed(problem=unreadable(e))
                seen.served, seen.nulls = metrics.value_counts()
                seen.served_source = "this server's metrics since it started"
                cache["o"] = (time.monotonic(), seen)
            return seen

        return ui_routes(registry, marks, auth, project, observations)

    return pages


def ui_routes(registry: Registry, marks: Callable[[], Awaitable[Freshness]], auth: HttpAuth,
              project: str = "", observations: Callable[[], Awaitable[Observed]] | None = None) -> list[Route]:
    """Routes of the catalog; `marks` gives the materializer marks, `observations` what the guards last saw
    (none: nothing observed). The index is built at the first request, not at a worker's start."""
    links = ServerLinks("/ui")
    built: dict[str, Renderer] = {}

    def renderer() -> Renderer:
        if "r" not in built:
            built["r"] = Renderer(CatalogIndex(registry), project)
        return built["r"]

    async def observed() -> Observed:
        return await observations() if observations is not None else Observed()

    async def catalog(request: Request) -> Response:
        query = request.query_params.get("q", "")
        return HTMLResponse(renderer().catalog(links, query, _page(request), signed_in=_signed_in(request)),
                            headers=HEADERS)

    async def view(request: Request) -> Response:
        r = renderer()
        entry = r.index.views.get(request.path_params["name"])
        base, _, version = request.path_params["name"].rpartition("@")
        if entry is None and version.isdigit() and base in r.index.views:  # view@N: the view's versions
            return RedirectResponse(f"{links.view(base)}#versions", status_code=303)
        if entry is None:
            return HTMLResponse(r.catalog(links, request.path_params["name"], signed_in=_signed_in(request),
                                          missing=request.path_params["name"]), status_code=404, headers=HEADERS)
        now, seen = time.time(), await observed()
        panel = from_marks(registry.view(entry.name, entry.version), await marks(), now)
        return HTMLResponse(r.view(links, entry, judge(entry, panel, seen), seen, now, signed_in=_signed_in(request)),
                            headers=HEADERS)

    async def health(request: Request) -> Response:
        r = renderer()
        state, now, seen = await marks(), time.time(), await observed()
        healths = {name: judge(v, from_marks(registry.view(v.name, v.version), state, now), seen)
                   for name, v in r.index.views.items()}
        return HTMLResponse(r.health(links, healths, LIVE, signed_in=_signed_in(request), now_s=now), headers=HEADERS)

    async def models(request: Request) -> Response:
        return HTMLResponse(renderer().models(links, await observed(), signed_in=_signed_in(request)), headers=HEADERS)

    async def model(request: Request) -> Response:
        seen = await observed()
        entry = seen.models.get(request.path_params["ref"])
        named = sorted((m for m in seen.models.values() if m.model == request.path_params["ref"]),
                       key=lambda m: (m.registered_at, m.version))
        if entry is None and named:  # a model's name alone: its newest registered version
            return RedirectResponse(links.model(named[-1].ref), status_code=303)
        if entry is None:
            known = ", ".join(sorted(seen.models)[:10]) or "none registered"
            return HTMLResponse(renderer().models(links, seen, signed_in=_signed_in(request),
                                                  missing=f"{request.path_params['ref']} (registered: {known})"),
                                status_code=404, headers=HEADERS)
        return HTMLResponse(renderer().model(links, entry, seen, signed_in=_signed_in(request)), headers=HEADERS)

    async def login_page(request: Request) -> Response:
        return HTMLResponse(renderer().login(links, _next(request.query_params.get("next")),
                                             open_server=auth.mode == "none", hours=SIGN_IN_S // 3600),
                            headers=HEADERS)

    async def login(request: Request) -> Response:
        """A token pasted into the sign-in form: checked as the API checks it (valid, scope read), then kept
        in the catalog's cookie. A form posted from another site is refused (its Origin is not this host)."""
        if not _same_origin(request):
            return HTMLResponse("sign-in refused: the form was posted from another site", status_code=403,
                                headers=HEADERS)
        body = await request.body()
        fields = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"))
        token = (fields.get("token") or [""])[0].strip()
        next_path = _next((fields.get("next") or [""])[0])
        if auth.mode == "none":
            return RedirectResponse(next_path, status_code=303)
        who = await auth.authenticate({"type": "http", "method": "GET", "path": "/ui", "query_string": b"",
                                       "headers": [(b"authorization", b"Bearer " + token.encode())]})
        if isinstance(who, Refusal):
            status = 503 if who.status == 503 else 401
            return HTMLResponse(renderer().login(links, next_path, who.detail, hours=SIGN_IN_S // 3600),
                                status_code=status, headers=HEADERS)
        out = RedirectResponse(next_path, status_code=303)
        out.set_cookie(UI_COOKIE, token, max_age=SIGN_IN_S, path="/ui", httponly=True, samesite="strict",
                       secure=_https(request))
        return out

    async def logout(request: Request) -> Response:
        if not _same_origin(request):
            return HTMLResponse("sign-out refused: the form was posted from another site", status_code=403,
                                headers=HEADERS)
        out = RedirectResponse("/ui/login", status_code=303)
        out.delete_cookie(UI_COOKIE, path="/ui", httponly=True, samesite="strict", secure=_https(request))
        return out

    async def search(request: Request) -> Response:
        """The catalog's search as JSON: features matching every word of `q`, a page at a time; a page past
        the last is empty (a client pages until it is), and a page or size out of range is a 422."""
        try:
            number = _strict(request.query_params.get("page"), 1, "page", 1, 1_000_000)
            size = _strict(request.query_params.get("per_page"), PER_PAGE, "per_page", 1, 500)
        except ValueError as e:
            return JSONResponse({"error": "bad_request", "detail": str(e)}, status_code=422)
        page = renderer().index.search(request.query_params.get("q", ""), number, size, clamp=False)
        return JSONResponse({"total": page.total, "page": page.page, "pages": page.pages,
                             "features": [{"name": f.name, "view": f.view, "version": f.version,
                                           "data_type": f.data_type, "description": f.description}
                                          for f in page.items]})

    async def stylesheet(_: Request) -> Response:
        css = (resources.files("featurehouse.ui") / "static" / STYLESHEET).read_bytes()
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300",
                                                             "X-Content-Type-Options": "nosniff"})

    return [Route("/ui", catalog, methods=["GET"]), Route("/ui/views/{name}", view, methods=["GET"]),
            Route("/ui/health", health, methods=["GET"]), Route("/ui/models", models, methods=["GET"]),
            Route("/ui/models/{ref:path}", model, methods=["GET"]),  # a model's name may hold "/"
            Route("/ui/login", login_page, methods=["GET"]),
            Route("/ui/login", login, methods=["POST"]),
            Route("/ui/logout", logout, methods=["POST"]),
            Route("/ui/api/search", search, methods=["GET"]),
            Route(f"/ui/static/{STYLESHEET}", stylesheet, methods=["GET"])]


def _signed_in(request: Request) -> bool:
    return UI_COOKIE in request.cookies


def _next(path: str | None) -> str:
    """Where sign-in leads back to: a catalog page of this server, never another site nor another route
    (`/ui/../docs` is /docs: the path is read as a browser reads it before it is judged)."""
    if not path or "\\" in path or "//" in path or not path.startswith("/ui"):
        return "/ui"
    route, _, fragment = path.partition("#")
    route, sep, query = route.partition("?")
    normal = posixpath.normpath(unquote(route))
    if normal != "/ui" and not normal.startswith("/ui/"):
        return "/ui"
    return normal + (sep + query) + ("#" + fragment if fragment else "")


def _https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def _same_origin(request: Request) -> bool:
    """A form posted by this server's own page carries its Origin (or none, from older clients)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _page(request: Request) -> int:
    return _whole(request.query_params.get("page"), 1, 1_000_000)


def _strict(text: str | None, default: int, name: str, least: int, most: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number from {least} to {most}, got {text!r}") from None
    if not least <= value <= most:
        raise ValueError(f"{name} must be from {least} to {most}, got {value}")
    return value


def _whole(text: str | None, default: int, most: int) -> int:
    """A page number or size from the query string; anything else is the default (a page is not an error)."""
    try:
        return min(max(1, int(text)), most) if text else default
    except ValueError:
        return default
