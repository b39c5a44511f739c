"""POST /v1/feature-definitions: check a definition against the registry before its dbt model exists.

A definition names a view, its entity, version and column schema. Against what dbt declares (and what
was posted before, kept as pending in the online store): new -> 201 pending, identical -> 200, a
changed schema for an existing name@version -> 409 naming the columns and the version to bump to,
malformed -> 422 naming the field.

Pending definitions are bounded (a client must not grow the online store without limit): at most
`max_definitions` of them (serve's setting, default 1000; a new one past it is a 409 naming the limit),
each at most MAX_STORED_BYTES once normalized (else 413). The cap is checked and the definition stored
in one Lua call, so concurrent posts cannot pass it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from featurehouse.durations import parse_duration
from featurehouse.errors import InvalidDuration
from featurehouse.registry.model import Registry
from featurehouse.types import canonical

PENDING = "fh:pending_definitions"
MAX_STORED_BYTES = 64 << 10  # one pending definition, as stored
# HSET unless the hash already holds ARGV[3] other definitions; 1 when stored, 0 when the cap refused it
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FIELDS = {"name", "entity", "schema", "transformRef", "freshnessSlo", "ttl", "owner", "version", "description",
          "sensitivity", "online", "tags"}


@dataclass
class Verdict:
    status: int
    body: dict


def _norm_type(t: str) -> str:
    """A posted or declared type in its canonical spelling (featurehouse.types): 'BIGINT' is 'bigint'."""
    return canonical(str(t))


def validate(body: Any, registry: Registry) -> dict | Verdict:
    def bad(field: str, problem: str) -> Verdict:
        return Verdict(422, {"error": "invalid_definition", "field": field, "detail": f"{field}: {problem}"})

    if not isinstance(body, dict):
        return bad("body", "send a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return bad(unknown[0], f"unknown field (known: {', '.join(sorted(FIELDS))})")
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        return bad("name", "required: a view name (letters, digits, underscores)")
    entity = body.get("entity")
    if entity not in registry.entities:
        return bad("entity", f"unknown entity {entity!r} (declared: {', '.join(sorted(registry.entities))})")
    version = body.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return bad("version", "must be a positive integer")
    schema = body.get("schema")
    if not isinstance(schema, dict) or not schema or not all(isinstance(k, str) and k and isinstance(v, str) and v
                                                             for k, v in schema.items()):
        return bad("schema", "required: an object of column name -> type, e.g. {\"txn_count_1h\": \"bigint\"}")
    for field in ("freshnessSlo", "ttl"):
        if field in body:
            try:
                parse_duration(body[field])
            except InvalidDuration as e:
                return bad(field, str(e))
    for field in ("owner", "transformRef", "description", "sensitivity"):
        if field in body and not isinstance(body[field], str):
            return bad(field, "must be a string")
    return {**body, "version": version, "schema": {k: _norm_type(v) for k, v in schema.items()}}


def judge(definition: dict, registry: Registry, pending: dict[str, dict]) -> Verdict:
    name, version = definition["name"], definition["version"]
    key = f"{name}@{version}"
    versions = registry.versions(name)
    if version in versions:
        view = registry.view(name, version)
        existing = {f.column: _norm_type(f.data_type or "") for f in view.features}
        where = f"dbt model '{view.model}'"
    elif key in pending:
        existing, where = pending[key]["schema"], "a pending definition"
    else:
        return Verdict(201, {"status": "pending", "name": key,
                             "detail": f"recorded; it becomes active once a dbt model declares {key}"})
    wanted = definition["schema"]
    if wanted == existing:
        return Verdict(200, {"status": "unchanged", "name": key})
    removed = sorted(set(existing) - set(wanted))
    added = sorted(set(wanted) - set(existing))
    changed = sorted(c for c in set(wanted) & set(existing) if wanted[c] != existing[c])
    bump = max(versions + [int(k.rsplit("@", 1)[1]) for k in pending if k.startswith(f"{name}@")] + [version]) + 1
    return Verdict(409, {"error": "schema_conflict", "name": key, "removed": removed, "added": added,
                         "changed": {c: {"from": existing[c], "to": wanted[c]} for c in changed},
                         "detail": f"{key} is already defined by {where} with another schema "
                                   f"(removed: {removed or '-'}, added: {added or '-'}, changed: {changed or '-'}); "
                                   f"publish it as version {bump}"})


async def add_pending(client, definition: dict, verdict: Verdict, max_definitions: int) -> Verdict:
    """Store a new definition (judged 201) as pending, within the limits; the verdict to answer with."""
    key = f"{definition['name']}@{definition['version']}"
    stored = json.dumps(definition, separators=(",", ":"), ensure_ascii=False).encode()
    if len(stored) > MAX_STORED_BYTES:
        return Verdict(413, {"error": "definition_too_large", "name": key, "limit": MAX_STORED_BYTES,
                             "detail": f"{key} is {len(stored)} bytes as stored: a pending definition may be at most "
                                       f"{MAX_STORED_BYTES} bytes"})
    if not await _add(client, key, stored, max_definitions):
        return Verdict(409, {"error": "too_many_definitions", "name": key, "limit": max_definitions,
                             "detail": f"at most {max_definitions} pending definitions are kept (serving setting "
                                       "max_definitions) and that many are pending: publish their dbt models, or ask "
                                       f"the operator to remove stale ones (Redis hash {PENDING}) or raise the limit"})
    return verdict


async def _add(client, key: str, stored: bytes, max_definitions: int) -> int:
    """fh_add_pending (online/store.py's function library); loaded first when a fresh store lacks it."""
    import redis

    try:
        return await client.fcall("fh_add_pending", 1, PENDING, key, stored, max_definitions)
    except redis.ResponseError as e:
        if "function" not in str(e).lower():
            raise
        from featurehouse.online.store import FUNCTIONS

        await client.function_load(FUNCTIONS, replace=True)
        return await client.fcall("fh_add_pending", 1, PENDING, key, stored, max_definitions)


def load_pending(raw: dict) -> dict[str, dict]:
    return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}


def listing(registry: Registry, pending: dict[str, dict]) -> list[dict]:
    out = []
    for name in registry.view_names():
        for version in registry.versions(name):
            view = registry.view(name, version)
            out.append({"name": name, "version": version, "status": "active" if version == registry.active_version(name)
                        else "declared", "entity": view.entity.name, "owner": view.owner,
                        "schema": {f.column: f.data_type for f in view.features},
                        "transformRef": f"{view.unique_id}@{view.checksum}"})
    for _key, d in sorted(pending.items()):
        out.append({"name": d["name"], "version": d["version"], "status": "pending", "entity": d["entity"],
                    "owner": d.get("owner"), "schema": d["schema"], "transformRef": d.get("transformRef")})
    return out
