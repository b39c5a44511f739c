"""Who is asking: bearer tokens on the HTTP apps, and the scope each route needs.

Every route but the health checks and the API description needs `Authorization: Bearer <token>`
(`featurehouse token create`), unless the server was started with `auth: none`, which is refused on
anything but a loopback address. A token in the query string is refused (query strings end up in
access logs). Scopes: `read` (vectors, definitions listing), `push` or `push:<view>` (the push route),
`admin` (registering definitions), `metrics` or `admin` (/metrics). Which features a principal may
read is decided later, per request plan, by the access policy (featurehouse/access/policy.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import orjson

from featurehouse.access.tokens import SCOPES, Authenticated, InvalidToken, TokenVerifier, local_principal
from featurehouse.errors import FeaturehouseError
from featurehouse.online.keys import TOKENS

AUTH_MODES = ("token", "none")
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs"})
# The web catalog's sign-in: a browser cannot send a bearer token by itself, so /ui/login takes one and
# keeps it in this cookie (HttpOnly, SameSite=Strict, Path=/ui), which only /ui pages accept, never the API.
UI_COOKIE = "fh_ui"
UI_OPEN = frozenset({"/ui/login", "/ui/logout", "/ui/static/ui.css"})


def is_ui_path(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


def ui_cookie_token(scope) -> bytes | None:
    """The token the catalog's sign-in left in the request's cookie, if any."""
    for name, value in scope["headers"]:
        if name == b"cookie":
            for part in value.split(b";"):
                key, _, token = part.strip().partition(b"=")
                if key == UI_COOKIE.encode() and token:
                    return token
    return None
_QUERY_TOKENS = (b"access_token=", b"token=", b"api_key=", b"apikey=")


class InsecureBind(FeaturehouseError):
    """`auth: none` on an address other hosts can reach."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_auth_mode(mode: str, host: str) -> str:
    """The auth setting, refused when it would open the server to the network."""
    mode = str(mode).strip().lower()
    if mode not in AUTH_MODES:
        raise FeaturehouseError(f"auth {mode!r}: give 'token' (the default: bearer tokens) or 'none' (loopback only)")
    if mode == "none" and not is_loopback(host):
        raise InsecureBind(f"auth: none is allowed only on a loopback address (127.0.0.1, ::1, localhost), not on "
                           f"host {host}: anyone who reaches it would read every feature; create a token with "
                           "`featurehouse token create` and keep auth: token")
    return mode


def route_path(scope) -> str:
    """The path routes match: without the app's root path (a mount, a proxy prefix), as Starlette routes it. Scopes
    are decided on it, so a prefix cannot hide a route from its scope."""
    path, root = scope["path"], scope.get("root_path") or ""
    return path[len(root):] or "/" if root and path.startswith(root) else path


def route_template(path: str) -> str:
    """A refused request's route, without the ids and names the caller chose (they may be personal data, and a
    flood of distinct paths must stay a few audit events)."""
    for prefix in ("/v1/features/", "/v1/push/", "/v1/feature-definitions"):
        if path.startswith(prefix):
            return prefix + ("…" if len(path) > len(prefix) else "")
    return path if path in ("/metrics", "/healthz", "/readyz", "/openapi.json", "/docs") else "(other)"


def required_scope(method: str, path: str) -> str | None:
    """The scope a route needs (None: any valid token; routes that do not exist answer 404 after auth)."""
    if path.startswith("/v1/features/"):
        return "read"
    if path.startswith("/v1/push/"):
        return "push"
    if path.startswith("/v1/feature-definitions") or path == "/ui" or path.startswith("/ui/"):
        return "admin" if method == "POST" else "read"
    if path == "/metrics":
        return "metrics"
    return None


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    detail: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    principal: str | None = None  # who was refused, when the token said (a missing scope)

    def body(self) -> bytes:
        return orjson.dumps({"error": self.code, "detail": self.detail})


SCOPE_KEY = "featurehouse.principal"
_CHALLENGE = ((b"www-authenticate", b'Bearer realm="featurehouse"'),)


class HttpAuth:
    """Authenticates requests against the online store's live tokens, re-read at most once per `refresh_s`.
    `client` is a redis.asyncio client, or a redis-py one (then read in a worker thread)."""

    def __init__(self, mode: str, client, timeout_s: float = 0.5, refresh_s: float = 1.0):
        self.mode, self.client, self.timeout_s, self.refresh_s = mode, client, timeout_s, refresh_s
        self._blocking = not type(client).__module__.startswith("redis.asyncio")
        self.verifier = TokenVerifier()
        self._read_at = float("-inf")
        # with auth: none (loopback only) requests act for whoever started the server
        self.local = Authenticated(local_principal(), frozenset(SCOPES))

    async def _refresh(self) -> bool:
        """False when the tokens could never be read (the store down since start)."""
        now = time.monotonic()
        if now - self._read_at < self.refresh_s:
            return True
        self._read_at = now
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._blocking:
                    self.verifier.update(await asyncio.to_thread(self.client.hgetall, TOKENS))
                else:
                    self.verifier.update(await self.client.hgetall(TOKENS))
        except Exception:  # noqa: BLE001 - the last known tokens stand; a revoke waits for the store
            pass
        return self.verifier.loaded

    async def authenticate(self, scope) -> Authenticated | Refusal:
        """The request's principal, or why it is refused (401, 403 for a missing scope, 503 store down)."""
        path = route_path(scope)
        if path in OPEN_PATHS or path.startswith("/docs/") or path in UI_OPEN:
            return self.local if self.mode == "none" else Authenticated("anonymous", frozenset())
        if self.mode == "none":
            return self.local
        query = scope.get("query_string") or b""
        if query and any(marker in unquote_to_bytes(query).lower() for marker in _QUERY_TOKENS):
            return Refusal(401, "unauthorized", "tokens in the query string are refused (they end up in logs): "
                           "send Authorization: Bearer <token>", _CHALLENGE)
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        if header is None and is_ui_path(path):
            signed_in = ui_cookie_token(scope)
            header = b"Bearer " + signed_in if signed_in else None
        if header is None:
            return Refusal(401, "unauthorized", "send Authorization: Bearer <token> (featurehouse token create)",
                           _CHALLENGE)
        kind, _, token = header.partition(b" ")
        if kind.lower() != b"bearer" or not token.strip():
            return Refusal(401, "unauthorized", "the Authorization header must read 'Bearer <token>'", _CHALLENGE)
        if not await self._refresh():
            return Refusal(503, "online_store_unavailable", "online store unreachable or slow: tokens cannot be "
                           "checked", ((b"retry-after", b"1"),))
        try:
            who = self.verifier.verify(token.strip(), time.time())
        except InvalidToken as e:
            return Refusal(401, "unauthorized", str(e), _CHALLENGE)
        needed = required_scope(scope["method"], path)
        if needed == "push":
            view = path[len("/v1/push/"):].partition("@")[0]
            if not who.allows("push", view):
                return Refusal(403, "forbidden", f"principal '{who.principal}' has no push scope for view '{view}' "
                               f"(token {who.token_id}: {', '.join(sorted(who.scopes))}); create a token with "
                               f"--scopes push or push:{view}", principal=who.principal)
        elif needed == "metrics":
            if not (who.allows("metrics") or who.allows("admin")):
                return Refusal(403, "forbidden", f"principal '{who.principal}' needs scope metrics or admin for "
                               f"/metrics (token {who.token_id}: {', '.join(sorted(who.scopes))})", principal=who.principal)
        elif needed is not None and not who.allows(needed):
            return Refusal(403, "forbidden", f"principal '{who.principal}' needs scope {needed} for {scope['method']} "
                           f"{path} (token {who.token_id}: {', '.join(sorted(who.scopes))})", principal=who.principal)
        return who


class AuthGate:
    """ASGI wrapper for an app of its own (`featurehouse push-api`): each request authenticated and its scope
    checked as `featurehouse serve` does, the principal put in the scope, refusals answered as JSON."""

    def __init__(self, app, auth: HttpAuth, on_refused=None):
        self.app, self.auth, self.on_refused = app, auth, on_refused

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        who = await self.auth.authenticate(scope)
        if isinstance(who, Refusal):
            if self.on_refused is not None:
                self.on_refused(scope, who)
            body = who.body()
            await send({"type": "http.response.start", "status": who.status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                    *who.headers]})
            await send({"type": "http.response.body", "body": body})
            return
        scope[SCOPE_KEY] = who
        await self.app(scope, receive, send)
