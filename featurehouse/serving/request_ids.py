"""Request ids for the HTTP apps (`featurehouse serve`, `featurehouse push-api`).

Every response carries `X-Request-ID`: the client's own when it is a short plain token, so a caller's
trace id carries through, else one made here. Every 5xx body is JSON holding that id and every 5xx is
logged with it (logger `featurehouse.serving`; a 500 with its traceback), so an operator can find the
log line a user's report refers to. A 500 never shows the exception to the client.

What a client must not see but an operator needs (a 503's Redis host, port and driver message) goes
under INTERNAL_DETAIL in the request's scope (`keep_internal`): it is added to the 5xx's log line and
never sent. A 503 body says only what the client may know.

Ids are a per-app random prefix and a counter (`3f9c1a2b-1f`): no syscall or randomness per request,
and unique across workers and restarts in practice (32 random bits per app instance).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from typing import Any, Awaitable, Callable, MutableMapping

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"x-request-id"
SCOPE_KEY = "featurehouse.request_id"  # where handlers find the id, as bytes
INTERNAL_DETAIL = "featurehouse.internal_detail"  # a 5xx's cause for the log only, never sent
LOG = logging.getLogger("featurehouse.serving")

# what a client may choose: short, printable, no spaces or separators that would garble a log line
_SANE = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}").fullmatch


def client_request_id(headers) -> bytes | None:
    """The client's X-Request-ID if it is a sane token (1-128 of `A-Za-z0-9._:-`), else None."""
    for name, value in headers:
        if name == HEADER:
            return value if _SANE(value) else None
    return None


def keep_internal(scope: Scope, detail: str) -> None:
    """Record the cause of a 5xx that is answered with a generic body: logged with the request id, not sent."""
    scope[INTERNAL_DETAIL] = detail


class RequestIds:
    """ASGI wrapper that gives each HTTP request an id, puts it on the response and on every 5xx.

    Works outside Starlette (where Starlette's own 500 has already started: its body is replaced) and
    inside it as middleware (the exception arrives first: the JSON 500 is sent here)."""

    def __init__(self, app: ASGIApp, logger: logging.Logger = LOG) -> None:
        self.app, self.logger = app, logger
        self._prefix = os.urandom(4).hex().encode()
        self._count = itertools.count(1)

    def next_id(self) -> bytes:
        """A fresh id: this instance's random prefix and its counter."""
        return b"%s-%x" % (self._prefix, next(self._count))

    def assign(self, scope: Scope) -> bytes:
        """The request's id (the client's if sane, else a fresh one), recorded in its scope."""
        request_id = scope[SCOPE_KEY] = client_request_id(scope["headers"]) or self.next_id()
        return request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.run(self.app, scope, receive, send, self.assign(scope))

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, request_id: bytes) -> None:
        """`app` answers the request: the id goes on its response; a 5xx becomes JSON naming the request
        and is logged; an exception is logged with its traceback, then answered with a 500 if it can be."""
        reply = _Reply(send, request_id)
        try:
            await app(scope, receive, reply.send)
        except Exception:  # noqa: BLE001 - any failure of a handler is a logged 500, never a dropped connection
            # logged first: if a response already went out, sending the 500 below fails
            self.logger.exception("request %s: %s %r -> %s: the handler raised", request_id.decode(), scope["method"],
                                  scope["path"], 500 if not reply.started else reply.status)
            if not reply.started:
                await reply.internal_error()
            return
        if reply.status is not None and reply.status >= 500:
            internal = scope.get(INTERNAL_DETAIL)
            self.logger.warning("request %s: %s %r -> %d %s%s", request_id.decode(), scope["method"], scope["path"],
                                reply.status, reply.detail, f" (cause: {internal})" if internal else "")


class Reraise:
    """An ASGI app that raises what another raised: hands a failure caught elsewhere to `RequestIds.run`,
    which logs its traceback once and answers the 500."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise self.error


class _Reply:
    """The response as it goes out: the id header on its start; a 5xx held back until its whole body
    is in, then sent as JSON with the request id in it."""

    __slots__ = ("_send", "request_id", "status", "started", "detail", "_start", "_body")

    def __init__(self, send: Send, request_id: bytes) -> None:
        self._send, self.request_id = send, request_id
        self.status: int | None = None
        self.started = False  # a response start went out: another one cannot follow
        self.detail = ""
        self._start: Message | None = None
        self._body: list[bytes] = []

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = status = message["status"]
            message["headers"] = [*message.get("headers", ()), (HEADER, self.request_id)]
            if status >= 500:
                self._start = message  # held until the body is complete
                return
            self.started = True
        elif kind == "http.response.body" and self._start is not None:
            self._body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._send_error(self._start, b"".join(self._body))
            return
        await self._send(message)

    async def internal_error(self) -> None:
        """The 500 of a handler that raised before it answered (its traceback is logged, not sent)."""
        self.status = 500
        start = {"type": "http.response.start", "status": 500, "headers": [(HEADER, self.request_id)]}
        await self._send_error(start, orjson.dumps({
            "error": "internal_error",
            "detail": "the server failed to answer; report the request_id to its operator"}))

    async def _send_error(self, start: Message, body: bytes) -> None:
        """A 5xx as JSON that names the request: the handler's JSON object with `request_id` added,
        or any other body (Starlette's plain-text 500) as the detail of one."""
        try:
            content = orjson.loads(body)
        except orjson.JSONDecodeError:
            content = None
        if not isinstance(content, dict):
            content = {"error": "internal_error" if start["status"] == 500 else "server_error",
                       "detail": body.decode("utf-8", "replace")}
        content["request_id"] = self.request_id.decode()
        self.detail = f"{content.get('error')}: {content.get('detail')}"
        out = orjson.dumps(content)
        start["headers"] = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"content-type")]
        start["headers"] += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
        self._start, self.started = None, True
        await self._send(start)
        await self._send({"type": "http.response.body", "body": out})
