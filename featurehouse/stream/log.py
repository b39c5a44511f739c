"""The push path: validated rows enter a durable Redis Stream per view; a consumer group applies them.

Keys (one hash tag per view and version, so a view's stream, dead letters and state share a slot):

    fh:stream:{<view>@<N>}     the stream of accepted rows
    fh:dead:{<view>@<N>}       rows that failed validation, with the reason (never silently dropped)
    fh:materializer            hash: <view>@<N>:stream_lag_s / :stream_checked_at / :sync_at ...

A consumer writes each batch to the online store (through the event-time guard), appends it to the
view's landing table in the warehouse (replacing rows with the same stream ids, so a replay does not
duplicate), and only then acknowledges it. A restarted consumer first re-reads its own pending
entries, then claims entries that a dead consumer left pending.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable, Mapping, cast

import pyarrow as pa
import redis

from featurehouse.catalog import DEFAULT_SCHEMA
from featurehouse.offline.warehouse import Warehouse
from featurehouse.online.codec import decode_values, encode_values, from_micros, to_micros
from featurehouse.online.keys import MATERIALIZER
from featurehouse.online.store import OnlineRow, RedisOnlineStore
from featurehouse.registry.model import FeatureView, Relation
from featurehouse.stream.rows import MAX_CLOCK_SKEW, InvalidRow, validate

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

GROUP = "featurehouse"
LANDING_SCHEMA = DEFAULT_SCHEMA  # the catalog's schema unless the project names another
STREAM_ID = "__fh_stream_id"


def stream_key(view: FeatureView) -> str:
    return f"fh:stream:{{{view.versioned_name}}}"


def dead_letter_key(view: FeatureView) -> str:
    return f"fh:dead:{{{view.versioned_name}}}"


def landing_relation(view: FeatureView, schema: str = LANDING_SCHEMA) -> Relation:
    """The warehouse table holding a view's pushed rows, read with the view by training and sync; it
    lives with featurehouse's own tables (the catalog's schema, which the dbt macros read too)."""
    return Relation(None, schema, f"stream__{view.name}__v{view.version}")


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


def _arrow_type(data_type: str | None) -> pa.DataType | None:
    """The landing table's column type: the view's own column type, as Arrow (featurehouse.types)."""
    from featurehouse.types import arrow_type

    return arrow_type(data_type)


@dataclass
class ConsumerStats:
    processed: int = 0
    written: int = 0
    skipped_older: int = 0
    batches: int = 0


class StreamConsumer:
    """One member of the consumer group of every given view's stream."""

    def __init__(self, online: RedisOnlineStore, warehouse: Warehouse, views: list[FeatureView],
                 name: str = "consumer-1", batch_size: int = 500, claim_idle_ms: int = 30_000,
                 schema: str = LANDING_SCHEMA):
        self.online, self.wh, self.views, self.schema = online, warehouse, views, schema
        self.client = online.client
        self.name, self.batch_size, self.claim_idle_ms = name, batch_size, claim_idle_ms
        self.stats = ConsumerStats()
        for view in views:
            try:
                self.client.xgroup_create(stream_key(view), GROUP, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    def run_once(self, block_ms: int | None = None) -> int:
        """Process at most one batch per view: own pending entries, then orphans, then new ones."""
        done = 0
        for view in self.views:
            entries = self._pending(view) or self._claim(view) or self._new(view, block_ms)
            if entries:
                self._apply(view, entries)
                done += len(entries)
            self._record_lag(view)
        return done

    def run(self, stop: Any = None, block_ms: int = 1000) -> None:
        """Until `stop.is_set()` (a threading.Event) or forever."""
        while stop is None or not stop.is_set():
            if not self.run_once(block_ms=None):
                time.sleep(block_ms / 1000 / max(len(self.views), 1))

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

    def _apply(self, view: FeatureView, entries: list) -> None:
        ids = [e[0] for e in entries]
        rows = [decode_entry(e[1][b"r"]) for e in entries]
        result = self.online.write(view, rows)
        self._append_offline(view, ids, rows)
        self.client.xack(stream_key(view), GROUP, *ids)
        self.stats.processed += len(rows)
        self.stats.written += result.written
        self.stats.skipped_older += result.skipped_older
        self.stats.batches += 1

    def _append_offline(self, view: FeatureView, ids: list, rows: list[OnlineRow]) -> None:
        fields, arrays = [], []
        key_values = list(zip(*[r.key for r in rows]))
        for k, values in zip(view.entity.keys, key_values):
            fields.append(k)
            arrays.append(pa.array(values))
        fields.append(view.event_time)
        arrays.append(pa.array([r.event_time for r in rows], pa.timestamp("us")))
        if view.created_at:
            fields.append(view.created_at)
            arrays.append(pa.array([r.created_at for r in rows], pa.timestamp("us")))
        for j, feature in enumerate(view.features):
            fields.append(feature.column)
            arrays.append(pa.array([r.values[j] for r in rows], _arrow_type(feature.data_type)))
        fields.append(STREAM_ID)
        arrays.append(pa.array([i.decode() if isinstance(i, bytes) else i for i in ids], pa.string()))
        landing = landing_relation(view, self.schema)
        assert landing.schema is not None  # landing tables live in the catalog's schema
        self.wh.append_table(landing.schema, landing.identifier, pa.table(arrays, names=fields), STREAM_ID)

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
        oldest_ms = None if oldest is None else int((oldest.decode() if isinstance(oldest, bytes) else oldest).split("-")[0])
        lag = 0.0 if oldest_ms is None else max(0.0, (now_ms - oldest_ms) / 1000)
        self.client.hset(MATERIALIZER, mapping={f"{view.versioned_name}:stream_lag_s": f"{lag:.3f}",
                                                f"{view.versioned_name}:stream_checked_at": f"{time.time():.3f}"})


def stream_lag(client: redis.Redis, view: FeatureView) -> float | None:
    """The lag the consumer last recorded for a view, in seconds (None: no consumer has run)."""
    value = client.hget(MATERIALIZER, f"{view.versioned_name}:stream_lag_s")
    return None if value is None else float(value)
