"""An HTTP client for the serving API, mirroring FeatureStore.online_features.

One `httpx.Client` per ServingClient: connections are kept alive and reused across calls (close it with
`close()`, or use the client as a context manager). Every call has a connect timeout and a read timeout.
A read is tried again, a bounded number of times, when the connection fails (refused, reset, or closed by
the server while idle) and when the server answers 503 with a Retry-After it is willing to wait for; any
other answer is final. Serving needs `Authorization: Bearer <token>` (`featurehouse token create`): pass
`token=`, or set FEATUREHOUSE_TOKEN.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from datetime import datetime
from typing import Any, Sequence, overload

import httpx

from featurehouse.errors import FeaturehouseError, InvalidRequest, UnknownFeature
from featurehouse.serving.vectors import FeatureValue, FeatureVector

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_RETRIES = 2
MAX_RETRY_WAIT_S = 5.0  # a Retry-After longer than this is not waited for: the 503 is raised
BACKOFF_S = 0.05  # after a failed connection: 0.05 s, then 0.1 s, 0.2 s...
TOKEN_ENV = "FEATUREHOUSE_TOKEN"

# the connection failed before an answer came: safe to send a read again (a read that timed out is not
# retried: the server may still be working on it, and the caller's time is spent)
_RETRIED_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError,
                   httpx.RemoteProtocolError)


class ServingUnavailable(FeaturehouseError):
    """The server (or its online store) cannot answer now; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


class ServingRefused(FeaturehouseError):
    """401: no valid bearer token (none sent, malformed, unknown, expired or revoked); 403: the token lacks
    the scope, or its principal may not read a requested feature. `status` and the server's `body`."""

    def __init__(self, status: int, message: str, body: dict):
        super().__init__(message)
        self.status, self.body = status, body


class ServingClient:
    """Feature vectors from a `featurehouse serve` at `base_url`.

    `timeout` is the default of both `connect_timeout` and `read_timeout` (seconds). `retries`: how many
    times a read is sent again after a failed connection or a 503 with Retry-After (waiting at most
    `max_retry_wait_s` for it). `token`: the bearer token (default: FEATUREHOUSE_TOKEN). `transport`: an
    httpx transport to use instead of the network (tests)."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT_S, *, token: str | None = None,
                 connect_timeout: float | None = None, read_timeout: float | None = None,
                 retries: int = DEFAULT_RETRIES, max_retry_wait_s: float = MAX_RETRY_WAIT_S,
                 max_connections: int = 10, transport: httpx.BaseTransport | None = None):
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries, self.max_retry_wait_s = retries, max_retry_wait_s
        token = (token if token is not None else os.environ.get(TOKEN_ENV, "")).strip()
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, transport=transport,
            timeout=httpx.Timeout(timeout, connect=connect_timeout if connect_timeout is not None else timeout,
                                  read=read_timeout if read_timeout is not None else timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections))

    def online_features(self, entity_type: str, ids: Sequence[str | int] | str | int,
                        names: Sequence[str] | None = None, model: str | None = None) -> list[FeatureVector]:
        """Vectors of `ids` (keys as serving takes them: `42`, `card_id=1;merchant_id=7`), in their order: the
        features `names` (`view.column[@N]`), or `model`'s of this entity type."""
        if isinstance(ids, (str, int)):
            ids = [ids]
        body = {"ids": [str(i) for i in ids], **({"names": list(names)} if names else {}),
                **({"model": model} if model else {})}
        path = f"/v1/features/{urllib.parse.quote(entity_type, safe='')}:batchGet"
        reply = self._read("POST", path, body)  # a POST, but a read: safe to send again
        return [_vector(v) for v in reply["vectors"]]

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._http.close()

    def __enter__(self) -> "ServingClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _read(self, method: str, path: str, body: dict | None = None) -> dict:
        """A read, sent again after a failed connection or a 503 with Retry-After, `retries` times at most."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, path, json=body)
            except _RETRIED_ERRORS as e:
                if last:
                    raise ServingUnavailable(f"serving unreachable at {self.base_url}: {_reason(e)}", None) from None
                time.sleep(BACKOFF_S * 2**attempt)
                continue
            except httpx.TimeoutException as e:
                raise ServingUnavailable(f"serving at {self.base_url} did not answer in time ({_reason(e)})",
                                         None) from None
            except httpx.HTTPError as e:
                raise ServingUnavailable(f"serving at {self.base_url}: {_reason(e)}", None) from None
            if response.status_code == 503 and not last:
                wait = _retry_after(response)
                if wait is not None and wait <= self.max_retry_wait_s:
                    time.sleep(wait)
                    continue
            return self._answer(response)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _answer(self, response: httpx.Response) -> dict:
        """The JSON body of a 2xx; otherwise the error a caller in-process would get."""
        body = _json(response)
        if response.is_success:
            if not isinstance(body, dict):
                raise ServingUnavailable(f"serving at {self.base_url} answered {response.status_code} without a "
                                         "JSON object", None)
            return body
        code = response.status_code
        error = body if isinstance(body, dict) else {}
        detail = str(error.get("detail") or response.reason_phrase or code)
        if code == 404:
            raise UnknownFeature(detail)
        if code in (400, 413, 422):
            raise InvalidRequest(detail)
        if code in (401, 403):
            raise ServingRefused(code, f"{code}: {detail}", error)
        raise ServingUnavailable(f"{code}: {detail}" + (f" (request id {error['request_id']})"
                                                        if error.get("request_id") else ""), _retry_after(response))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (a date, the header's other form, is not used by featurehouse)."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


@overload
def _time(text: str) -> datetime: ...
@overload
def _time(text: None) -> None: ...
def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def _vector(body: dict) -> FeatureVector:
    features = {name: FeatureValue(f["value"], _time(f["event_time"]), f["age_seconds"], f["stale"], f["version"],
                                   f["status"]) for name, f in body["features"].items()}
    return FeatureVector(body["entity_type"], body["entity_id"], features, body["stale"], _time(body["served_at"]),
                         body.get("guardrails"), float(body.get("behind_s", 0.0)))
