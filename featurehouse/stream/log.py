"""The push path: validated rows enter a durable Redis Stream per view; a consumer group applies them.

Keys (one hash tag per view and version, so a view's stream, dead letters and state share a slot):

    fh:stream:{<view>@<N>}     the stream of accepted rows
    fh:dead:{<view>@<N>}       rows that failed validation, and entries the consumer could not apply,
                               with the reason (never silently dropped)
    fh:materializer            hash: <view>@<N>:stream_lag_s / :stream_checked_at / :sync_at ...

A consumer appends each batch to the view's landing table in the warehouse first (replacing rows
with the same stream ids, so a replay does not duplicate), then writes it to the online store
(through the event-time guard, so a replay changes nothing), and only then acknowledges it: a value
the warehouse refuses is never served. A restarted consumer first re-reads its own pending entries,
then claims entries that a dead consumer left pending.

A batch that fails is applied again entry by entry; an entry that keeps failing is moved to the
dead-letter stream with its reason once it has been delivered `max_deliveries` times (XPENDING's
count, which survives restarts), and the consumer goes on. A failure while Redis is unreachable, or
while the warehouse is down, is nobody's entry's fault: it never counts against an entry.

Landing tables are created with the view's own types (its key columns' and features', as Arrow types
from featurehouse.types), never inferred from the first batch, so they UNION with the model. A
landing table an older featurehouse made with another key type sets the view aside, reported with
both types; its entries wait in the stream until the table is fixed.

Redis outages: commands retry a few times with exponential backoff (redis-py's Retry), then `run`
waits with backoff up to BACKOFF_CAP_S, reports when Redis went down and when it came back, reloads
featurehouse's functions, recreates the consumer groups if Redis lost them, and resumes with the
pending entries. While Redis is down nothing can be pushed and no lag can be recorded: readers of
the lag add the time since the consumer last checked in (stream_checked_at) to the lag it recorded,
so the lag they report grows with the outage; once back, the consumer records the real lag (the
age of the oldest entry not yet applied).

Forgotten entities (`featurehouse forget`, featurehouse/sync/forget.py): a push of a tombstoned
entity, or of one keyed by it, is accepted and then dropped by the consumer: acknowledged and deleted
from the stream, landed nowhere, counted in `dropped_forgotten`. The consumer checks the online store's
mirror of the tombstones before applying a batch and again after (a forget between the two: what it
wrote is deleted again), and makes the mirror whole from the warehouse when it starts and after an
outage (a Redis restored from an older state). An entry deleted from the stream while pending (forget
deletes the entity's entries) is acknowledged, counted in `vanished`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, cast

import pyarrow as pa
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from featurehouse.catalog import DEFAULT_SCHEMA
from featurehouse.clock import epoch_seconds, utc_now
from featurehouse.errors import FeaturehouseError, InfrastructureError, WarehouseUnavailable
from featurehouse.offline.warehouse import Warehouse
from featurehouse.online.codec import decode_values, encode_values, from_micros, to_micros
from featurehouse.online.history import STREAM_SAMPLE_EVERY_S, record_lag_sample
from featurehouse.online.keys import MATERIALIZER
from featurehouse.online.store import FUNCTIONS, OnlineRow, RedisOnlineStore
from featurehouse.registry.model import FeatureView, Relation
from featurehouse.stream.rows import MAX_CLOCK_SKEW, InvalidRow, forgotten, key_types, recheck, validate
from featurehouse.types import arrow_type, logical

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

GROUP = "featurehouse"
LANDING_SCHEMA = DEFAULT_SCHEMA  # the catalog's schema unless the project names another
STREAM_ID = "__fh_stream_id"
MAX_DELIVERIES = 5
BACKOFF_CAP_S = 5.0
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


def stream_key(view: FeatureView) -> str:
    return f"fh:stream:{{{view.versioned_name}}}"


def dead_letter_key(view: FeatureView) -> str:
    return f"fh:dead:{{{view.versioned_name}}}"


def landing_relation(view: FeatureView, schema: str = LANDING_SCHEMA) -> Relation:
    """The warehouse table holding a view's pushed rows, read with the view by training and sync; it
    lives with featurehouse's own tables (the catalog's schema, which the dbt macros read too)."""
    return Relation(None, schema, f"stream__{view.name}__v{view.version}")


class InvalidEntry(FeaturehouseError):
    """A stream entry that is not a pushed row featurehouse wrote (written to the stream by hand)."""


class LandingTableMismatch(FeaturehouseError):
    """A view's landing table has a key column of another type than the view's (made by an older
    featurehouse from the first pushed batch): it would not UNION with the model."""

    def __init__(self, view: FeatureView, table: Relation, column: str, found: str, expected: str):
        self.view, self.table, self.column, self.found, self.expected = view, table, column, found, expected
        where = ".".join(table.parts())
        super().__init__(
            f"view '{view.versioned_name}': landing table {where} has column '{column}' of type '{found}', but the "
            f"view's key column is '{expected}'; its pushed rows wait in the stream until the table is fixed "
            f"(e.g. ALTER TABLE {where} ALTER COLUMN \"{column}\" TYPE {expected} USING \"{column}\"::{expected}, "
            "or drop it to start it again from the stream)")


def check_landing_table(warehouse: Warehouse, view: FeatureView, types: tuple[str | None, ...] | None = None,
                        schema: str = LANDING_SCHEMA) -> None:
    """Raise LandingTableMismatch if the view's landing table exists with a key column of another type
    family than the view's (`types`, by default its declared key types): sync and training would fail
    on the UNION with the model."""
    landing = landing_relation(view, schema)
    existing = warehouse.describe(landing) or {}
    for k, t in zip(view.entity.keys, types if types is not None else key_types(view)):
        found = existing.get(k)
        if t and found and logical(found).family is not logical(t).family:
            raise LandingTableMismatch(view, landing, k, found, t)


@dataclass
class PushResult:
    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)


def push(client: redis.Redis | RedisCluster, view: FeatureView, rows: Iterable[Mapping[str, Any]],
         maxlen: int | None = None, max_clock_skew: timedelta = MAX_CLOCK_SKEW) -> PushResult:
    """Validate and append rows; invalid ones go to the dead-letter stream with their reason."""
    result = PushResult()
    pipe = client.pipeline(transaction=False)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for i, row in enumerate(rows):
        try:
            ok = validate(view, row, now, max_clock_skew)
        except InvalidRow as e:
            result.rejected.append((i, str(e)))
            pipe.xadd(dead_letter_key(view), {"row": json.dumps(row, default=str), "reason": str(e)})
            continue
        payload = encode_values([list(ok.key), to_micros(ok.event_time), to_micros(ok.created_at), list(ok.values)])
        pipe.xadd(stream_key(view), {"r": payload}, maxlen=maxlen, approximate=True)
        result.accepted += 1
    pipe.execute()
    return result


def decode_entry(payload: bytes) -> OnlineRow:
    key, et, ca, values = decode_values(payload)
    return OnlineRow(tuple(key), from_micros(et), from_micros(ca), tuple(values))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _store_down(error: BaseException) -> bool:
    """A store unreachable now (Redis said so by redis-py or by the online store, the warehouse down or
    its file held): not an entry's fault, waited out by `run`."""
    return isinstance(error, (*_REDIS_DOWN, InfrastructureError))


def _silent(_line: str) -> None:
    pass


def command_retry() -> Retry:
    """A blip (a failover, a restart) is retried inside each command; longer outages are `run`'s."""
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)


@dataclass
class ConsumerStats:
    processed: int = 0
    written: int = 0
    skipped_older: int = 0
    batches: int = 0
    failed_deliveries: int = 0  # an entry that failed, left pending for its next delivery
    dead_lettered: int = 0
    outages: int = 0
    dropped_forgotten: int = 0  # entries of forgotten entities: acknowledged and deleted, applied nowhere
    vanished: int = 0  # entries deleted from the stream while pending (by forget): nothing left to apply


@dataclass
class Outage:
    """A store (`which`: Redis or the warehouse) unreachable since `since` (time.monotonic()); `attempts`
    failed since."""

    since: float
    error: str
    which: str = "Redis"
    attempts: int = 0

    def next_delay(self) -> float:
        self.attempts += 1
        return ExponentialBackoff(cap=BACKOFF_CAP_S, base=0.1).compute(self.attempts)


class StreamConsumer:
    """One member of the consumer group of every given view's stream."""

    def __init__(self, online: RedisOnlineStore, warehouse: Warehouse, views: list[FeatureView],
                 name: str = "consumer-1", batch_size: int = 500, claim_idle_ms: int = 30_000,
                 schema: str = LANDING_SCHEMA, max_deliveries: int = MAX_DELIVERIES, retry: Retry | None = None):
        self.online, self.wh, self.views, self.schema = online, warehouse, views, schema
        self.client = online.client
        self.client.set_retry(retry or command_retry())
        self.name, self.batch_size, self.claim_idle_ms = name, batch_size, claim_idle_ms
        self.max_deliveries = max_deliveries
        self.stats = ConsumerStats()
        self.set_aside: dict[str, str] = {}  # view@N -> why its entries wait (LandingTableMismatch)
        self._key_types: dict[str, tuple[str | None, ...]] = {}  # view@N -> its key types (see _landing_key_types)
        self._sampled: dict[str, float] = {}  # view@N -> when its lag last went into the lag history (monotonic)
        self._create_groups()
        self._mirror_tombstones()

    def _create_groups(self) -> None:
        for view in self.views:
            try:
                self.client.xgroup_create(stream_key(view), GROUP, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    def run_once(self, block_ms: int | None = None) -> int:
        """Process at most one batch per view: own pending entries, then orphans, then new ones.
        Returns how many entries were done with (applied, or moved to the dead letters)."""
        done = 0
        for view in self.views:
            if self._ready(view):
                done += self._round(view, block_ms)
            self._record_lag(view)
        return done

    def _round(self, view: FeatureView, block_ms: int | None) -> int:
        """Entries that failed stay pending for their next delivery; new ones are read meanwhile."""
        entries = self._pending(view) or self._claim(view)
        done = self._apply(view, entries) if entries else 0
        if entries and done == len(entries):
            return done
        fresh = self._new(view, None if entries else block_ms)
        return done + (self._apply(view, fresh) if fresh else 0)

    def run(self, stop: threading.Event | None = None, block_ms: int = 1000,
            report: Callable[[str], None] | None = None) -> None:
        """Until `stop.is_set()`, or forever; Redis outages are waited out (see the module docstring).
        `report` gets one line when Redis goes down, one when it is back, one per view set aside."""
        stop = stop or threading.Event()
        say = report or _silent
        outage: Outage | None = None
        told: set[str] = set()
        while not stop.is_set():
            try:
                if outage is not None:
                    self._back(outage, say)
                    outage = None
                idle = not self.run_once(block_ms=None)
            except (redis.ConnectionError, redis.TimeoutError, InfrastructureError) as e:
                outage = outage or self._down(e, say)
                stop.wait(outage.next_delay())
                continue
            except redis.ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
                self._resume()  # Redis restarted without its data between two commands
                continue
            told = self._tell_set_aside(told, say)
            if idle:
                stop.wait(block_ms / 1000 / max(len(self.views), 1))

    def _down(self, error: Exception, say: Callable[[str], None]) -> Outage:
        which = "the warehouse" if isinstance(error, WarehouseUnavailable) else "Redis"
        say(f"{which.capitalize()} unreachable ({error}); retrying with backoff (up to {BACKOFF_CAP_S:.0f} s apart), "
            "pushed entries wait in the stream")
        return Outage(time.monotonic(), str(error), which)

    def _back(self, outage: Outage, say: Callable[[str], None]) -> None:
        self._resume()
        self.stats.outages += 1
        say(f"{outage.which.capitalize()} is back after {time.monotonic() - outage.since:.1f} s down; "
            "resuming (pending entries first)")

    def _resume(self) -> None:
        """Redis restarted, perhaps without its data: functions and groups are made again if missing."""
        self.client.function_load(FUNCTIONS, replace=True)
        self._create_groups()
        self._mirror_tombstones()

    def _mirror_tombstones(self) -> None:
        """The warehouse's tombstones into the online store's mirror, which a wiped or restored Redis
        lacks; best effort (the warehouse may be down: then the next sync does it)."""
        from featurehouse.catalog import Catalog
        from featurehouse.sync.forget import mirror_tombstones

        try:
            mirror_tombstones(Catalog(self.wh, self.schema), self.client)
        except Exception:  # noqa: BLE001 - never stops the consumer; sync repairs the mirror too
            pass

    def _tell_set_aside(self, told: set[str], say: Callable[[str], None]) -> set[str]:
        for view_name in sorted(set(self.set_aside) - told):
            say(self.set_aside[view_name])
        return set(self.set_aside)

    # Replies are RESP2's, [[stream, [(id, fields), ...]]]: redis-py's annotations include RESP3's dicts too.

    def _pending(self, view) -> list:
        reply = cast("list[list[Any]]",
                     self.client.xreadgroup(GROUP, self.name, {stream_key(view): "0"}, count=self.batch_size))
        return reply[0][1] if reply and reply[0][1] else []

    def _claim(self, view) -> list:
        reply = self.client.xautoclaim(stream_key(view), GROUP, self.name, self.claim_idle_ms, "0-0",
                                       count=self.batch_size)
        return [e for e in reply[1] if e[1]] if reply and len(reply) > 1 else []

    def _new(self, view, block_ms) -> list:
        reply = cast("list[list[Any]]", self.client.xreadgroup(GROUP, self.name, {stream_key(view): ">"},
                                                               count=self.batch_size, block=block_ms))
        return reply[0][1] if reply and reply[0][1] else []

    # -- applying entries ------------------------------------------------------------------------

    def _apply(self, view: FeatureView, entries: list) -> int:
        """The batch at once; if it fails, entry by entry, so one bad entry holds up no other."""
        try:
            self._apply_batch(view, entries)
            return len(entries)
        except Exception as e:  # noqa: BLE001 - any failure is retried entry by entry below
            if _store_down(e):
                raise
            if len(entries) == 1:
                return self._failed(view, entries[0], e)
        return sum(self._apply_one(view, entry) for entry in entries)

    def _apply_one(self, view: FeatureView, entry: Any) -> int:
        try:
            self._apply_batch(view, [entry])
            return 1
        except Exception as e:  # noqa: BLE001 - counted against the entry, or re-raised if a store is down
            if _store_down(e):
                raise
            return self._failed(view, entry, e)

    def _apply_batch(self, view: FeatureView, entries: list) -> None:
        gone = [e[0] for e in entries if not e[1]]  # deleted from the stream while pending (forget)
        entries = [e for e in entries if e[1]]
        decoded = [self._decode(view, e) for e in entries]
        dropped = self._forgotten(view, entries, decoded)
        kept = [(e, r) for e, r in zip(entries, decoded) if e[0] not in dropped]
        ids, rows = [e[0] for e, _ in kept], [r for _, r in kept]
        written = skipped = 0
        if rows:
            self._append_offline(view, ids, rows)  # first: a value the warehouse refuses is never served
            # before the write, in the order of application: a restore rolling the write back moves it back
            self.online.mark_streamed(view.name, view.version, epoch_seconds(utc_now()))
            result = self.online.write(view, rows)
            written, skipped = result.written, result.skipped_older
            self.online.mark_newest_event(view.name, view.version, max(epoch_seconds(r.event_time) for r in rows))
            late = self._forgotten(view, [e for e, _ in kept], rows)
            if late:  # forgotten while this batch was applied: undone, as forget would have
                self._undo(view, late, rows, ids)
                dropped |= late
        self._done(view, ids, gone, dropped)
        self.stats.processed += len(rows) - len(dropped.intersection(ids))
        self.stats.written += written
        self.stats.skipped_older += skipped
        self.stats.dropped_forgotten += len(dropped)
        self.stats.vanished += len(gone)
        self.stats.batches += 1

    def _forgotten(self, view: FeatureView, entries: list, rows: list[OnlineRow]) -> set:
        """Ids of the entries whose entity is tombstoned (or keyed by a tombstoned one)."""
        marks = forgotten(self.client, view.entity.keys, [r.key for r in rows])
        return {e[0] for e, mark in zip(entries, marks) if mark}

    def _undo(self, view: FeatureView, late: set, rows: list[OnlineRow], ids: list) -> None:
        """Entries applied as their entity was forgotten: their landed rows and online hashes go again."""
        from sqlglot import exp

        from featurehouse.online.keys import entity_key

        landing = landing_relation(view, self.schema)
        where = exp.In(this=exp.column(STREAM_ID, quoted=True),
                       expressions=[exp.Literal.string(_text(i)) for i in late])
        self.wh.execute_dml(exp.delete(exp.table_(landing.identifier, db=landing.schema, quoted=True), where=where))
        for key in {entity_key(view.entity.name, r.key) for i, r in zip(ids, rows) if i in late}:
            self.client.delete(key)  # one by one: on a cluster, entities live in different slots

    def _done(self, view: FeatureView, applied: list, gone: list, dropped: set) -> None:
        """Acknowledge the batch; entries of forgotten entities are deleted from the stream as well."""
        pipe = self.client.pipeline(transaction=True)  # one slot: the view's hash tag
        done = [*applied, *gone, *(dropped - set(applied))]
        if done:
            pipe.xack(stream_key(view), GROUP, *done)
        if dropped:
            pipe.xdel(stream_key(view), *dropped)
        pipe.execute()

    def _decode(self, view: FeatureView, entry: Any) -> OnlineRow:
        """The entry's row, checked again as a push would be (entries from older versions, or XADDed)."""
        payload = entry[1].get(b"r", entry[1].get("r"))
        if payload is None:
            raise InvalidEntry(f"stream entry {_text(entry[0])} has no 'r' field (fields: "
                               f"{', '.join(sorted(_text(k) for k in entry[1]))})")
        try:
            row = decode_entry(payload)
        except Exception as e:  # noqa: BLE001 - msgpack and unpacking raise many kinds; all mean "not ours"
            raise InvalidEntry(f"stream entry {_text(entry[0])} is not a pushed row: {type(e).__name__}: {e}") from None
        key, values = recheck(view, self._key_types_of(view), row.key, row.values)
        return OnlineRow(key, row.event_time, row.created_at, values)

    def _failed(self, view: FeatureView, entry: Any, error: Exception) -> int:
        """Count a failure against an entry; at `max_deliveries`, move it to the dead letters (1 done)."""
        self._stores_up(view, error)
        entry_id = entry[0]
        deliveries = self._deliveries(view, entry_id)
        if deliveries < self.max_deliveries:
            self.stats.failed_deliveries += 1
            return 0
        pipe = self.client.pipeline(transaction=True)  # one slot: the view's hash tag
        pipe.xadd(dead_letter_key(view), {"r": entry[1].get(b"r", entry[1].get("r", b"")),
                                          "reason": f"{type(error).__name__}: {error}",
                                          "stream_id": entry_id, "deliveries": deliveries, "consumer": self.name})
        pipe.xack(stream_key(view), GROUP, entry_id)
        pipe.execute()
        self.stats.dead_lettered += 1
        return 1

    def _stores_up(self, view: FeatureView, error: Exception) -> None:
        """A failure with a store down is not the entry's: raise instead of counting it."""
        self.client.ping()  # raises redis.ConnectionError while Redis is down
        try:
            self.wh.execute("select 1")
        except Exception as e:  # noqa: BLE001 - whatever the driver raises, the warehouse is not answering
            raise WarehouseUnavailable(f"the warehouse failed while the stream consumer applied "
                                       f"'{view.versioned_name}': {error}; and does not answer now: {e}") from e

    def _deliveries(self, view: FeatureView, entry_id: bytes | str) -> int:
        """How often the entry was delivered (0: no longer pending for the group, e.g. claimed and done)."""
        info = self.client.xpending_range(stream_key(view), GROUP, min=entry_id, max=entry_id, count=1)
        return int(info[0]["times_delivered"]) if info else 0

    # -- the landing table ---------------------------------------------------------------------

    def _ready(self, view: FeatureView) -> bool:
        """Whether the view's landing table can take its rows (checked again each round until it can)."""
        try:
            self._key_types_of(view)
        except LandingTableMismatch as e:
            self.set_aside[view.versioned_name] = str(e)
            return False
        self.set_aside.pop(view.versioned_name, None)
        return True

    def _key_types_of(self, view: FeatureView) -> tuple[str | None, ...]:
        """The view's key types, found once; raises LandingTableMismatch while its landing table disagrees."""
        found = self._key_types.get(view.versioned_name)
        if found is None:
            found = self._key_types[view.versioned_name] = self._landing_key_types(view)
        return found

    def _landing_key_types(self, view: FeatureView) -> tuple[str | None, ...]:
        """The view's key types; the model's described columns stand in for a view that does not say
        them (built by hand). An existing landing table must agree with them."""
        declared = list(key_types(view))
        if None in declared:
            described = self._describe(view.relation) or {}
            declared = [t or described.get(k) for k, t in zip(view.entity.keys, declared)]
        check_landing_table(self.wh, view, tuple(declared), self.schema)
        return tuple(declared)

    def _describe(self, relation: Relation) -> dict[str, str] | None:
        try:
            return self.wh.describe(relation)
        except Exception:  # noqa: BLE001 - best effort: the key types stay unknown, inferred as before
            return None

    def _append_offline(self, view: FeatureView, ids: list, rows: list[OnlineRow]) -> None:
        landing = landing_relation(view, self.schema)
        assert landing.schema is not None  # landing tables live in the catalog's schema
        table = pa.table(self._landing_columns(view, ids, rows))
        self.wh.append_table(landing.schema, landing.identifier, table, STREAM_ID)

    def _landing_columns(self, view: FeatureView, ids: list, rows: list[OnlineRow]) -> dict[str, pa.Array]:
        """Columns of the view's own types: the table they create is the view's, whatever the batch."""
        columns: dict[str, pa.Array] = {}
        for i, (k, t) in enumerate(zip(view.entity.keys, self._key_types_of(view))):
            columns[k] = pa.array([r.key[i] for r in rows], arrow_type(t) if t else None)
        columns[view.event_time] = pa.array([r.event_time for r in rows], pa.timestamp("us"))
        if view.created_at:
            columns[view.created_at] = pa.array([r.created_at for r in rows], pa.timestamp("us"))
        for j, feature in enumerate(view.features):
            columns[feature.column] = pa.array([r.values[j] for r in rows], arrow_type(feature.data_type))
        columns[STREAM_ID] = pa.array([_text(i) for i in ids], pa.string())
        return columns

    def _record_lag(self, view: FeatureView) -> None:
        """Age of the oldest entry not yet applied (pending or undelivered); 0 when caught up."""
        key = stream_key(view)
        oldest = None
        summary = self.client.xpending(key, GROUP)
        if summary and summary.get("pending"):
            oldest = summary["min"]
        else:
            groups = {g["name"]: g for g in self.client.xinfo_groups(key)}
            last = groups.get(GROUP.encode(), groups.get(GROUP, {})).get("last-delivered-id", b"0-0")
            nxt = self.client.xrange(key, min=b"(" + (last if isinstance(last, bytes) else last.encode()), count=1)
            oldest = nxt[0][0] if nxt else None
        now_ms = time.time() * 1000
        oldest_ms = None if oldest is None else int(_text(oldest).split("-")[0])
        lag = 0.0 if oldest_ms is None else max(0.0, (now_ms - oldest_ms) / 1000)
        now = time.time()
        self.client.hset(MATERIALIZER, mapping={f"{view.versioned_name}:stream_lag_s": f"{lag:.3f}",
                                                f"{view.versioned_name}:stream_checked_at": f"{now:.3f}"})
        last = self._sampled.get(view.versioned_name)
        if last is None or time.monotonic() - last >= STREAM_SAMPLE_EVERY_S:  # the catalog's sparkline
            self._sampled[view.versioned_name] = time.monotonic()
            try:
                record_lag_sample(self.client, view.versioned_name, now, lag, lag)
            except redis.ResponseError:  # e.g. an older writer loaded its library without fh_sample: a point lost
                pass


def stream_lag(client: redis.Redis, view: FeatureView) -> float | None:
    """The lag the consumer last recorded for a view, in seconds (None: no consumer has run)."""
    value = client.hget(MATERIALIZER, f"{view.versioned_name}:stream_lag_s")
    return None if value is None else float(value)
