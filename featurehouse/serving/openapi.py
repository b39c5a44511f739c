"""The serving API's OpenAPI document: the contract clients (and the fuzzer) are held to."""

from __future__ import annotations

from featurehouse.registry.model import FeatureView, Registry

ERROR = {"type": "object", "required": ["error", "detail"],
         "properties": {"error": {"type": "string"}, "detail": {},
                        "request_id": {"type": "string", "description": "Set on a 5xx: quote it to the operator "
                                                                        "(the X-Request-ID header holds it too)"}}}
VALUE = {"type": "object", "properties": {
    "value": {"description": "The value (JSON null when missing, expired, NULL, or a non-finite float)"},
    "event_time": {"type": ["string", "null"], "format": "date-time"},
    "age_seconds": {"type": ["number", "null"]},
    "stale": {"type": "boolean"},
    "version": {"type": "integer"},
    "status": {"type": "string", "enum": ["ok", "stale", "unverified", "expired", "missing"]}}}
VECTOR = {"type": "object", "required": ["entity_type", "entity_id", "features", "stale", "served_at"], "properties": {
    "entity_type": {"type": "string"}, "entity_id": {"type": "string"},
    "features": {"type": "object", "additionalProperties": VALUE},
    "stale": {"type": "boolean"}, "served_at": {"type": "string", "format": "date-time"},
    "guardrails": {"type": ["object", "null"], "description": "Set when served by model: ok is false when a value is "
                   "not ok or the model version failed (or never passed) `featurehouse deploy-check`",
                   "properties": {"ok": {"type": "boolean"}, "violations": {"type": "array", "items": {"type": "string"}}}},
    "behind_s": {"type": "number", "minimum": 0, "description": "At most how many seconds the values may be behind "
                 "the online store's primary: 0 when the primary answered; with `replica_reads`, the replica's proven "
                 "lag; with `near_cache`, the cached reply's age (plus its replica's lag)"}}}


DEFINITION = {"type": "object", "required": ["name", "entity", "schema"], "properties": {
    "name": {"type": "string"}, "entity": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
    "transformRef": {"type": "string"}, "freshnessSlo": {"type": "string"}, "ttl": {"type": "string"},
    "owner": {"type": "string"}, "description": {"type": "string"}, "sensitivity": {"type": "string"},
    "online": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}}}


def _errors(*codes: int) -> dict:
    text = {400: "Malformed request", 404: "Unknown entity type, feature, view or model",
            401: "No valid bearer token (missing, malformed, unknown, expired, revoked, or sent in the query string)",
            403: "The token lacks the scope, or its principal may not read a requested feature (the feature, the "
                 "principal and the grant that would allow it are named)",
            408: "The request body arrived too slowly", 409: "Conflict, named in the detail",
            413: "The request body is larger than the server takes",
            422: "Invalid input, named in the detail", 503: "Online store unreachable or too slow (Retry-After)"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": ERROR}}} for c in codes}


_INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}
_TIMESTAMP = [{"type": "string", "format": "date-time"}, {"type": "number", "description": "epoch seconds"}]
# the JSON a pushed value of each type family (featurehouse.types.Family) may be; stream/rows.py
# `coerce` is the judge
_FAMILY_JSON: dict[str, dict] = {
    "integer": {"type": ["integer", "null"], **_INT64},
    "float": {"type": ["number", "null"]},
    "boolean": {"type": ["boolean", "null"]},
    "string": {"type": ["string", "null"]},
    "timestamp": {"anyOf": [*_TIMESTAMP, {"type": "null"}]},
    "date": {"type": ["string", "null"], "format": "date"},
    "list": {"type": ["array", "null"]},
}


def row_schema(view: FeatureView) -> dict:
    """A pushed row of `view`: its key and event time columns and its features by declared type; every
    feature is required (null for NULL) unless the view takes partial rows (`partial_push`: a feature left
    out is stored as NULL)."""
    from featurehouse.types import logical  # with pyarrow and sqlglot: loaded when the document is asked for

    properties: dict[str, dict] = {k: {"anyOf": [{"type": "string"}, {"type": "integer", **_INT64}],
                                       "description": "entity key column"} for k in view.entity.keys}
    properties[view.event_time] = {"anyOf": _TIMESTAMP, "description": "event time (UTC; at most the allowed "
                                                                       "clock skew ahead of the server)"}
    for feature in view.features:
        # types without a JSON form of their own (structs, intervals, binary...) take any JSON value
        schema = dict(_FAMILY_JSON.get(logical(feature.data_type).family.value, {}))
        properties[feature.column] = {**schema, "description": f"{feature.data_type or 'untyped'}; null"
                                                               + (" or absent" if view.partial_push else "") + ": NULL"}
    features = [] if view.partial_push else list(view.feature_columns)
    return {"type": "object", "required": [*view.entity.keys, view.event_time, *features], "properties": properties,
            "additionalProperties": False}


def _push_operation(summary: str, rows: dict, max_rows: int, parameters: list) -> dict:
    listing = {"type": "array", "items": rows, "maxItems": max_rows}
    return {"post": {
        "summary": summary, "parameters": parameters,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [listing, {"type": "object", "required": ["rows"], "properties": {"rows": listing}}]}}}},
        "responses": {"202": {"description": "Accepted", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"view": {"type": "string"}, "accepted": {"type": "integer"}}}}}},
            **_errors(400, 401, 403, 404, 408, 413, 422, 503)}}}


def push_paths(registry: Registry, max_rows: int) -> dict:
    """POST /v1/push/{view}: one operation per view and version, its body the view's rows, so clients
    (and the fuzzer) see each view's columns; the templated path covers names the registry lacks."""
    paths = {"/v1/push/{view}": _push_operation(
        "Append rows to a view's durable stream (applied by `featurehouse stream`)", {"type": "object"}, max_rows,
        [{"name": "view", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "`view` (its active version) or `view@N`"}])}
    for name in registry.view_names():
        active = registry.view(name)
        paths[f"/v1/push/{name}"] = _push_operation(f"Append rows to {active.versioned_name}", row_schema(active),
                                                    max_rows, [])
        for version in registry.versions(name):
            view = registry.view(name, version)
            paths[f"/v1/push/{view.versioned_name}"] = _push_operation(f"Append rows to {view.versioned_name}",
                                                                       row_schema(view), max_rows, [])
    return paths


BEARER = {"bearer": {"type": "http", "scheme": "bearer", "description": "`featurehouse token create`: scopes read, "
                      "push or push:VIEW, admin, metrics (docs/security.md)"}}
OPEN = {"security": []}  # health and the API description need no token


def _secured(spec: dict, auth: bool) -> dict:
    if auth:
        spec["components"] = {"securitySchemes": BEARER}
        spec["security"] = [{"bearer": []}]
    return spec


def push_api_spec(registry: Registry, max_rows: int, auth: bool = True) -> dict:
    """The document of `featurehouse push-api`: the push routes and its health check."""
    return _secured({
        "openapi": "3.1.0",
        "info": {"title": "featurehouse push", "version": "1",
                 "description": "Rows pushed into views' durable streams, validated per view."},
        "paths": {**push_paths(registry, max_rows),
                  "/healthz": {"get": {"summary": "The process is up", **OPEN,
                                       "responses": {"200": {"description": "ok"}}}}},
    }, auth)


def openapi_spec(max_ids: int, registry: Registry, max_rows: int, push: bool = True, auth: bool = True) -> dict:
    names = {"name": "names", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Comma-separated features: view.column or view.column@N"}
    model = {"name": "model", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Instead of names: a model (dbt exposure) whose features of this entity type are served"}
    return _secured({
        "openapi": "3.1.0",
        "info": {"title": "featurehouse serving", "version": "1",
                 "description": "Feature vectors with freshness metadata from the online store."},
        "paths": {
            "/v1/features/{entityType}/{entityId}": {"get": {
                "summary": "One entity's feature vector",
                "description": "Composite keys are written `col=value;col=value`, e.g. `card_id=1;merchant_id=7`.",
                "parameters": [
                    {"name": "entityType", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "entityId", "in": "path", "required": True, "schema": {"type": "string"}},
                    names, model],
                "responses": {"200": {"description": "The vector", "content": {"application/json": {"schema": VECTOR}}},
                              **_errors(401, 403, 404, 422, 503)}}},
            "/v1/features/{entityType}:batchGet": {"post": {
                "summary": "Vectors of many entities, in request order",
                "parameters": [{"name": "entityType", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["ids"], "properties": {
                        "ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": max_ids},
                        "names": {"type": "array", "items": {"type": "string"}},
                        "model": {"type": "string"}}}}}},
                "responses": {"200": {"description": "The vectors", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"vectors": {"type": "array", "items": VECTOR}}}}}},
                    **_errors(400, 401, 403, 404, 408, 413, 422, 503)}}},
            "/v1/feature-definitions": {
                "post": {"summary": "Validate a feature definition against the registry",
                         "requestBody": {"required": True, "content": {"application/json": {"schema": DEFINITION}}},
                         "responses": {"200": {"description": "Identical to the registered definition"},
                                       "201": {"description": "New: recorded as pending until its dbt model exists"},
                                       "409": {"description": "A schema change to an existing name@version",
                                               "content": {"application/json": {"schema": ERROR}}},
                                       **_errors(400, 401, 403, 408, 413, 422, 503)}},
                "get": {"summary": "Every feature view, version and pending definition",
                        "responses": {"200": {"description": "The definitions"}, **_errors(401, 403, 503)}}},
            "/v1/feature-definitions/{name}": {"get": {
                "summary": "One view's versions", "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "Its definitions"}, **_errors(401, 403, 404, 503)}}},
            **(push_paths(registry, max_rows) if push else {}),
            "/healthz": {"get": {"summary": "The process is up", **OPEN, "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "The online store answers", **OPEN,
                                "responses": {"200": {"description": "ready"}, **_errors(503)}}},
            "/ui/api/search": {"get": {
                "summary": "Search the feature catalog (what /ui shows): features matching every word of q in their "
                           "own or their view's name, description, tags, owner, entity (scope read)",
                "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}},
                               {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                               {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                             "maximum": 500}}],
                "responses": {"200": {"description": "A page of matching features", "content": {"application/json": {
                    "schema": {"type": "object", "required": ["total", "page", "pages", "features"], "properties": {
                        "total": {"type": "integer"}, "page": {"type": "integer"}, "pages": {"type": "integer"},
                        "features": {"type": "array", "items": {"type": "object", "properties": {
                            "name": {"type": "string"}, "view": {"type": "string"}, "version": {"type": "integer"},
                            "data_type": {"type": "string"}, "description": {"type": "string"}}}}}}}}},
                    **_errors(401, 403)}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (scope metrics or admin)",
                                 "responses": {"200": {"description": "metrics"}, **_errors(401, 403)}}},
        },
    }, auth)
