"""The serving API's OpenAPI document: the contract clients (and the fuzzer) are held to."""

from __future__ import annotations

ERROR = {"type": "object", "required": ["error", "detail"],
         "properties": {"error": {"type": "string"}, "detail": {}}}
VALUE = {"type": "object", "properties": {
    "value": {"description": "The value (JSON null when missing, expired, NULL, or a non-finite float)"},
    "event_time": {"type": ["string", "null"], "format": "date-time"},
    "age_seconds": {"type": ["number", "null"]},
    "stale": {"type": "boolean"},
    "version": {"type": "integer"},
    "status": {"type": "string", "enum": ["ok", "stale", "expired", "missing"]}}}
VECTOR = {"type": "object", "required": ["entity_type", "entity_id", "features", "stale", "served_at"], "properties": {
    "entity_type": {"type": "string"}, "entity_id": {"type": "string"},
    "features": {"type": "object", "additionalProperties": VALUE},
    "stale": {"type": "boolean"}, "served_at": {"type": "string", "format": "date-time"},
    "guardrails": {"type": ["object", "null"], "description": "Set when served by model: ok is false when a value is "
                   "not ok or the model version failed (or never passed) `featurehouse deploy-check`",
                   "properties": {"ok": {"type": "boolean"}, "violations": {"type": "array", "items": {"type": "string"}}}}}}


DEFINITION = {"type": "object", "required": ["name", "entity", "schema"], "properties": {
    "name": {"type": "string"}, "entity": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
    "transformRef": {"type": "string"}, "freshnessSlo": {"type": "string"}, "ttl": {"type": "string"},
    "owner": {"type": "string"}, "description": {"type": "string"}, "sensitivity": {"type": "string"},
    "online": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}}}


def _errors(*codes: int) -> dict:
    text = {400: "Malformed request", 404: "Unknown entity type, feature, view or model",
            422: "Invalid input, named in the detail", 503: "Online store unreachable or too slow (Retry-After)"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": ERROR}}} for c in codes}


def openapi_spec(max_ids: int) -> dict:
    names = {"name": "names", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Comma-separated features: view.column or view.column@N"}
    model = {"name": "model", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Instead of names: a model (dbt exposure) whose features of this entity type are served"}
    return {
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
                              **_errors(404, 422, 503)}}},
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
                    **_errors(400, 404, 422, 503)}}},
            "/v1/feature-definitions": {
                "post": {"summary": "Validate a feature definition against the registry",
                         "requestBody": {"required": True, "content": {"application/json": {"schema": DEFINITION}}},
                         "responses": {"200": {"description": "Identical to the registered definition"},
                                       "201": {"description": "New: recorded as pending until its dbt model exists"},
                                       "409": {"description": "A schema change to an existing name@version",
                                               "content": {"application/json": {"schema": ERROR}}},
                                       **_errors(400, 422, 503)}},
                "get": {"summary": "Every feature view, version and pending definition",
                        "responses": {"200": {"description": "The definitions"}, **_errors(503)}}},
            "/v1/feature-definitions/{name}": {"get": {
                "summary": "One view's versions", "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "Its definitions"}, **_errors(404, 503)}}},
            "/v1/push/{view}": {"post": {
                "summary": "Append rows to a view's durable stream (applied by `featurehouse stream`)",
                "parameters": [{"name": "view", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "oneOf": [{"type": "array", "items": {"type": "object"}},
                              {"type": "object", "properties": {"rows": {"type": "array", "items": {"type": "object"}}}}]}}}},
                "responses": {"202": {"description": "Accepted"}, **_errors(400, 404, 422, 503)}}},
            "/healthz": {"get": {"summary": "The process is up", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "The online store answers",
                                "responses": {"200": {"description": "ready"}, **_errors(503)}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "metrics"}}}},
        },
    }
