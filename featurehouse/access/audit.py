"""The audit log: who read or was refused which restricted feature, token changes and forgets.

Events land in the warehouse table `featurehouse_audit`. Entity ids are never stored as they are:
`entity_ref` is a keyed hash of the entity (pseudonymised), so the log can say "the same entity" without
holding who it is, and `forget` can find that entity's events (featurehouse/sync/forget.py).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from featurehouse.clock import utc_now
from featurehouse.online.keys import AUDIT_KEY, AUDIT_STREAM
from featurehouse.registry.model import RESTRICTED

if TYPE_CHECKING:  # the catalog loads pyarrow and sqlglot, which a serving worker does without
    from featurehouse.catalog import Catalog

STREAM_MAXLEN = 1_000_000  # events kept online until landed (approximate trim)


@dataclass
class AuditEvent:
    principal: str
    action: str  # read | denied | training_set | batch_features | token_create | token_revoke | forget
    path: str = ""  # http | sdk | cli | training_set | batch
    view: str | None = None  # view@version
    sensitivity: str | None = None
    allowed: bool = True
    model: str | None = None
    purpose: str | None = None
    entity_type: str | None = None
    entity_ref: str | None = None
    reads: int = 1
    detail: str = ""
    at: datetime = field(default_factory=utc_now)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def pseudonym(key: bytes, entity_type: str, entity_key) -> str:
    """A keyed hash of an entity (its key values, however the request spelled them): equal for the same
    entity, meaningless without the key."""
    import json

    text = json.dumps([entity_type, *(str(v) for v in entity_key)], ensure_ascii=False)  # unambiguous for any key
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:24]


def record_events(catalog: Catalog, events: list[AuditEvent]) -> None:
    """Append events to featurehouse_audit (one transaction; an event landed twice is kept once)."""
    if not events:
        return
    from sqlglot import exp

    from featurehouse.catalog import AUDIT

    catalog.table(AUDIT)
    with catalog.transaction():
        ids = [e.event_id for e in events]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            catalog.delete(AUDIT, exp.column("event_id", quoted=True).isin(*[exp.Placeholder() for _ in chunk]), chunk)
        for event in events:
            catalog.insert(AUDIT, asdict(event))


def read_events(catalog: Catalog, principal: str | None = None, view: str | None = None,
                since: datetime | None = None, limit: int = 1000) -> list[dict]:
    """Events, newest first, filtered by principal, view (`view` or `view@N`) and time."""
    from sqlglot import exp

    from featurehouse.catalog import AUDIT

    conditions, params = [], []
    if principal:
        conditions.append(exp.column("principal", quoted=True).eq(exp.Placeholder()))
        params.append(principal)
    if view:
        column = exp.column("view", quoted=True)
        conditions.append(column.eq(exp.Placeholder()) if "@" in view else
                          exp.or_(column.eq(exp.Placeholder()), column.like(exp.Placeholder())))
        params.extend([view] if "@" in view else [view, f"{view}@%"])
    if since:
        conditions.append(exp.column("at", quoted=True) >= exp.Placeholder())
        params.append(since)
    condition = exp.and_(*conditions) if conditions else None
    return catalog.select(AUDIT, order_by=["at"], descending=True, limit=limit, condition=condition,
                          condition_params=params).to_pylist()


MAX_REFS = 10_000  # entity refs per event: a slot that fills is handed out as an event and a new one begins
MAX_REFUSED_KEYS = 1_000  # distinct (principal, request, reason) refusals per second; more are counted as one


class AuditBuffer:
    """What one process read of restricted views, gathered per (principal, view, model) and handed out once a
    second as events: confidential reads counted, pii reads with the pseudonyms of the entities read, and every
    denial in full. The hot path adds to a dict; nothing is written per request."""

    def __init__(self, path: str):
        self.path = path
        self.key: bytes | None = None  # the pseudonym key (fh:audit_key); without it, pii refs are not kept
        self._reads: dict[tuple, list] = {}  # (principal, view@N, sensitivity, model, entity_type) -> [count, refs]
        self._events: list[AuditEvent] = []
        self._refused: dict[tuple[str, str, str], int] = {}  # (principal, request, why) -> count

    def note_refused(self, principal: str, request: str, why: str) -> None:
        """A request refused before any feature was looked at (no token, a bad one, a missing scope): counted
        per principal, request and reason, so a flood of bad tokens is a few events a second, not one each."""
        key = (principal, request, why)
        if key not in self._refused and len(self._refused) >= MAX_REFUSED_KEYS:
            key = ("(many)", "(many)", "more distinct refusals this second than are itemised")
        self._refused[key] = self._refused.get(key, 0) + 1

    def note_reads(self, principal: str, views, entity_type: str, keys, model: str | None,
                   purposes: tuple[str | None, ...] | None = None) -> None:
        """`views` are the plan's views (only confidential and pii ones are noted), `keys` the entity keys read,
        `purposes` the purpose of the grant each view was read under (None: the owner team's, or no policy)."""
        for i, view in enumerate(views):
            if view.sensitivity not in RESTRICTED:
                continue
            purpose = purposes[i] if purposes else None
            key = (principal, view.versioned_name, view.sensitivity, model, entity_type, purpose)
            slot = self._reads.setdefault(key, [0, set()])
            slot[0] += len(keys)
            if view.sensitivity == "pii" and self.key is not None:
                slot[1].update(pseudonym(self.key, entity_type, k) for k in keys)
                if len(slot[1]) >= MAX_REFS:  # every entity read is listed: a full slot becomes an event now
                    self._events.append(AuditEvent(principal, "read", self.path, view.versioned_name, view.sensitivity,
                                                   True, model, purpose, entity_type=entity_type,
                                                   entity_ref=" ".join(sorted(slot[1])), reads=slot[0]))
                    del self._reads[key]

    def note_denied(self, decision, entity_type: str | None, detail: str = "") -> None:
        self._events.append(AuditEvent(decision.principal, "denied", self.path, decision.view, decision.sensitivity,
                                       False, decision.model, entity_type=entity_type,
                                       detail=detail or decision.reason))

    def note(self, event: AuditEvent) -> None:
        self._events.append(event)

    def drain(self) -> list[AuditEvent]:
        events, self._events = self._events, []
        reads, self._reads = self._reads, {}
        refused, self._refused = self._refused, {}
        for (principal, request, why), count in refused.items():
            events.append(AuditEvent(principal, "refused", self.path, allowed=False, reads=count,
                                     detail=f"{request}: {why}"))
        for (principal, view, sensitivity, model, entity_type, purpose), (count, refs) in reads.items():
            events.append(AuditEvent(principal, "read", self.path, view, sensitivity, True, model, purpose,
                                     entity_type=entity_type, entity_ref=" ".join(sorted(refs)) or None, reads=count))
        return events

    def __bool__(self) -> bool:
        return bool(self._reads or self._events or self._refused)


# -- the online store's audit stream: serving and the SDK write it, `featurehouse audit` lands it ----------

_FIELDS = ("event_id", "principal", "action", "path", "view", "sensitivity", "model", "purpose", "entity_type",
           "entity_ref", "detail")


def stream_fields(event: AuditEvent) -> dict[str, str]:
    fields = {name: str(getattr(event, name)) for name in _FIELDS if getattr(event, name) is not None}
    fields.update(allowed="1" if event.allowed else "0", reads=str(event.reads), at=event.at.isoformat())
    return fields


def event_from_stream(fields: dict) -> AuditEvent:
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()}
    return AuditEvent(principal=text.get("principal", "?"), action=text.get("action", "?"), path=text.get("path", ""),
                      view=text.get("view"), sensitivity=text.get("sensitivity"), allowed=text.get("allowed") == "1",
                      model=text.get("model"), purpose=text.get("purpose"), entity_type=text.get("entity_type"),
                      entity_ref=text.get("entity_ref"), reads=int(text.get("reads", "1")),
                      detail=text.get("detail", ""), at=datetime.fromisoformat(text["at"]) if "at" in text else utc_now(),
                      event_id=text.get("event_id") or uuid.uuid4().hex)


def write_events(client, events: list[AuditEvent]) -> None:
    """Append events to the online store's audit stream (redis-py, sync)."""
    if not events:
        return
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(AUDIT_STREAM, stream_fields(event), maxlen=STREAM_MAXLEN, approximate=True)
    pipe.execute()


async def write_events_async(client, events: list[AuditEvent]) -> None:
    if not events:
        return
    async with client.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(AUDIT_STREAM, stream_fields(event), maxlen=STREAM_MAXLEN, approximate=True)
        await pipe.execute()


def land_audit(client, catalog: Catalog, batch: int = 5000) -> int:
    """Move the audit stream's events into featurehouse_audit: recorded first, then deleted from the stream,
    so a crash between the two lands an event twice (kept once), never zero times."""
    landed = 0
    while True:
        entries = client.xrange(AUDIT_STREAM, count=batch)
        if not entries:
            return landed
        record_events(catalog, [event_from_stream(fields) for _, fields in entries])
        client.xdel(AUDIT_STREAM, *[entry_id for entry_id, _ in entries])
        landed += len(entries)


def audit_key(client, create: bool = False) -> bytes | None:
    """The pseudonym key. A writer (sync, token create, the SDK) makes it once; serving only reads it."""
    import secrets

    if create:
        client.set(AUDIT_KEY, secrets.token_hex(32), nx=True)
    value = client.get(AUDIT_KEY)
    return bytes.fromhex(value.decode() if isinstance(value, bytes) else value) if value else None


def redact_entity(client, catalog: Catalog, entity_type: str, entity_key) -> int:
    """Forget an entity in the audit log: its pseudonym is replaced by `forgotten` in landed events (the stream
    is landed first). Events keep who read what and when; they no longer link to the entity."""
    from sqlglot import exp

    from featurehouse.catalog import AUDIT

    key = audit_key(client)
    land_audit(client, catalog)
    if key is None or not catalog.exists(AUDIT):
        return 0
    ref = pseudonym(key, entity_type, entity_key)
    column = exp.column("entity_ref", quoted=True)
    where = column.like(exp.Placeholder())
    count = catalog.select(AUDIT, columns=["event_id"], condition=where, condition_params=[f"%{ref}%"]).num_rows
    if count:
        update = exp.update(catalog._table(AUDIT), {}, where=where)
        update.set("expressions", [exp.EQ(this=column.copy(), expression=exp.func(
            "replace", column.copy(), exp.Placeholder(), exp.Literal.string("forgotten")))])
        catalog.warehouse.execute_dml(update, (ref, f"%{ref}%"))
    return count
