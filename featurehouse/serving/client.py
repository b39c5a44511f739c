"""A small HTTP client for the serving API, mirroring FeatureStore.online_features."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Sequence, overload

from featurehouse.errors import FeaturehouseError, InvalidRequest, UnknownFeature
from featurehouse.serving.vectors import FeatureValue, FeatureVector


class ServingUnavailable(FeaturehouseError):
    """The server (or its online store) cannot answer now; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


class ServingClient:
    def __init__(self, base_url: str, timeout: float = 2.0):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def online_features(self, entity_type: str, ids: Sequence[str | int], names: Sequence[str] | None = None,
                        model: str | None = None) -> list[FeatureVector]:
        if isinstance(ids, (str, int)):
            ids = [ids]
        body = {"ids": [str(i) for i in ids], **({"names": list(names)} if names else {}),
                **({"model": model} if model else {})}
        path = f"/v1/features/{urllib.parse.quote(entity_type, safe='')}:batchGet"
        reply = self._call("POST", path, body)
        return [_vector(v) for v in reply["vectors"]]

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            detail = json.loads(e.read() or b"{}").get("detail", e.reason)
            if e.code == 404:
                raise UnknownFeature(str(detail)) from None
            if e.code in (400, 422):
                raise InvalidRequest(str(detail)) from None
            retry = e.headers.get("Retry-After")
            raise ServingUnavailable(f"{e.code}: {detail}", float(retry) if retry else None) from None
        except urllib.error.URLError as e:
            raise ServingUnavailable(f"serving unreachable at {self.base_url}: {e.reason}", None) from None


@overload
def _time(text: str) -> datetime: ...
@overload
def _time(text: None) -> None: ...
def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def _vector(body: dict) -> FeatureVector:
    features = {name: FeatureValue(f["value"], _time(f["event_time"]), f["age_seconds"], f["stale"], f["version"],
                                   f["status"]) for name, f in body["features"].items()}
    return FeatureVector(body["entity_type"], body["entity_id"], features, body["stale"], _time(body["served_at"]))
