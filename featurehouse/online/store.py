"""The online store: the latest value of every online feature, per entity, in Redis."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence, cast

import redis
from redis.exceptions import NoPermissionError

from featurehouse.errors import FeaturehouseError, InfrastructureError
from featurehouse.online.cluster_calls import per_node
from featurehouse.online.codec import decode_values, encode_values, from_micros, to_micros
from featurehouse.online.connect import client_from_url, cluster_node_error, is_cluster
from featurehouse.online.embedded import EmbeddedRedis, project_server_dir
from featurehouse.online.history import record_lag_sample
from featurehouse.online.keys import ACTIVE_VERSIONS, LAYOUTS, MATERIALIZER, STORE_ID, entity_key, time_field, value_field
from featurehouse.online.layout import Layout, parse_layouts
from featurehouse.registry.model import FeatureView

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

# The write guard and the retention pass's compare-and-delete, as one Redis Functions library (Redis 7+,
# Valkey): functions, unlike EVALSHA, may be pipelined on Redis Cluster too.
#
# fh_guard: a write never replaces a value with an older one. Equal event times: the greater created_at
# wins (NULL counts lowest, as -1); an equal pair is a repeat and is skipped, so re-running a sync
# changes nothing. Atomic inside Redis, so batch sync, stream and backfill writers can race and the
# newest truth still wins.
# fh_restate_batch: the guard for a declared restatement (a corrected view, same version): a value with
# the same event time and created_at as the stored one replaces it when its payload differs, and is
# counted apart; an older one is still refused. Returns {written, restated}.
# fh_hmget_many: HMGET of many entities in one command (read-only; a third of a pipeline's cost in Python).
# fh_mark_max: set a hash field to a number only if it is greater (two syncs finishing at once leave
# the later finish time, whatever order their marks arrive in).
# fh_add_pending: record a pending feature definition unless the cap of pending ones is reached (one call,
# so concurrent posts cannot pass the cap; a function, not EVAL, so serving's Redis user needs no EVAL).
# fh_expire: drop a view's value only if it is still the one the retention pass saw, so a newer value
# written meanwhile by a racing writer stays.
# fh_sample: append a sample (a JSON array) to the JSON list in a hash field, keeping the newest args[3]:
# the materializers' lag history (sync and the stream consumer may append at once; neither loses the other's).
FUNCTIONS = """#!lua name=featurehouse
redis.register_function('fh_guard', function(keys, args)
  local cur = redis.call('HGET', keys[1], args[2])
  local et, ca = tonumber(args[3]), tonumber(args[4])
  if cur then
    local sep = string.find(cur, ':', 1, true)
    local cet, cca = tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
    if et < cet or (et == cet and ca <= cca) then return 0 end
  end
  redis.call('HSET', keys[1], args[1], args[5], args[2], args[3] .. ':' .. args[4])
  return 1
end)
redis.register_function('fh_guard_batch', function(keys, args)
  local vf, tf, written = args[1], args[2], 0
  for i = 1, #keys do
    local b = (i - 1) * 3 + 2
    local et, ca = tonumber(args[b + 1]), tonumber(args[b + 2])
    local cur = redis.call('HGET', keys[i], tf)
    local newer = true
    if cur then
      local sep = string.find(cur, ':', 1, true)
      local cet, cca = tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
      newer = not (et < cet or (et == cet and ca <= cca))
    end
    if newer then
      redis.call('HSET', keys[i], vf, args[b + 3], tf, args[b + 1] .. ':' .. args[b + 2])
      written = written + 1
    end
  end
  return written
end)
redis.register_function('fh_restate_batch', function(keys, args)
  local vf, tf, written, restated = args[1], args[2], 0, 0
  for i = 1, #keys do
    local b = (i - 1) * 3 + 2
    local et, ca = tonumber(args[b + 1]), tonumber(args[b + 2])
    local cur = redis.call('HGET', keys[i], tf)
    local write, again = true, false
    if cur then
      local sep = string.find(cur, ':', 1, true)
      local cet, cca = tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
      if et < cet or (et == cet and ca < cca) then
        write = false
      elseif et == cet and ca == cca then
        again = true
        write = redis.call('HGET', keys[i], vf) ~= args[b + 3]
      end
    end
    if write then
      redis.call('HSET', keys[i], vf, args[b + 3], tf, args[b + 1] .. ':' .. args[b + 2])
      if again then restated = restated + 1 else written = written + 1 end
    end
  end
  return {written, restated}
end)
redis.register_function{function_name='fh_hmget_many', flags={'no-writes'}, callback=function(keys, args)
  local out = {}
  for i = 1, #keys do out[i] = redis.call('HMGET', keys[i], unpack(args)) end
  return out
end}
redis.register_function('fh_mark_max', function(keys, args)
  local cur = redis.call('HGET', keys[1], args[1])
  if (not cur) or tonumber(cur) < tonumber(args[2]) then
    redis.call('HSET', keys[1], args[1], args[2])
    return 1
  end
  return 0
end)
redis.register_function('fh_add_pending', function(keys, args)
  if redis.call('HEXISTS', keys[1], args[1]) == 1 or redis.call('HLEN', keys[1]) < tonumber(args[3]) then
    redis.call('HSET', keys[1], args[1], args[2])
    return 1
  end
  return 0
end)
redis.register_function('fh_expire', function(keys, args)
  if redis.call('HGET', keys[1], args[2]) == args[3] then
    redis.call('HDEL', keys[1], args[1], args[2])
    return 1
  end
  return 0
end)
redis.register_function('fh_sample', function(keys, args)
  local cur = redis.call('HGET', keys[1], args[1])
  local samples = {}
  if cur then
    local ok, decoded = pcall(cjson.decode, cur)
    if ok and type(decoded) == 'table' then samples = decoded end
  end
  table.insert(samples, cjson.decode(args[2]))
  local keep = tonumber(args[3])
  local first = math.max(1, #samples - keep + 1)
  local kept = {}
  for i = first, #samples do kept[#kept + 1] = samples[i] end
  redis.call('HSET', keys[1], args[1], cjson.encode(kept))
  return #kept
end)
"""



class OnlineStoreError(FeaturehouseError):
    """The online store refused a command."""


class OnlineStoreUnreachable(OnlineStoreError, InfrastructureError):
    """The online store does not answer now (down, frozen, failing over): worth retrying (exit 3)."""


def _failure(error: redis.RedisError, what: str) -> OnlineStoreError:
    """Our error for a driver's: unreachable (a connection or a timeout) is told apart from refused."""
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
        return OnlineStoreUnreachable(f"online store unreachable: {error}")
    cluster_node = cluster_node_error(error)
    if cluster_node is not None:
        return OnlineStoreError(cluster_node)
    return OnlineStoreError(f"{what}: {error}")


@dataclass(frozen=True)
class OnlineRow:
    """One entity's values of one view, to write."""

    key: tuple
    event_time: datetime
    created_at: datetime | None
    values: tuple


@dataclass(frozen=True)
class ViewRecord:
    """One view's values for one entity, as stored."""

    view: str
    version: int
    event_time: datetime
    created_at: datetime | None
    values: dict[str, Any]


@dataclass
class WriteResult:
    written: int = 0
    skipped_older: int = 0
    restated: int = 0  # values replaced at an equal event time and created_at (a declared restatement)

    def add(self, other: "WriteResult") -> None:
        self.written += other.written
        self.skipped_older += other.skipped_older
        self.restated += other.restated


class OnlineStore(Protocol):
    """What sync, stream, versions and serving need of an online store."""

    def write(self, view: FeatureView, rows: Iterable[OnlineRow], version: int | None = None,
              batch_size: int = 2000) -> WriteResult: ...

    def write_encoded(self, view: FeatureView, items: Iterable[tuple[str, int, int | None, bytes]],
                      version: int | None = None, batch_size: int = 2000, restate: bool = False) -> WriteResult: ...

    def read(self, entity_type: str, keys: Sequence[tuple], views: Sequence[tuple[FeatureView, int]]
             ) -> list[dict[str, ViewRecord | None]]: ...

    def set_active_version(self, view: str, version: int) -> None: ...

    def set_active_versions(self, active: dict[str, int]) -> None: ...

    def layout_for_write(self, view: FeatureView, version: int | None = None) -> Layout: ...

    def layouts(self) -> dict[str, Layout]: ...

    def mark_synced(self, view: str, version: int, at: float) -> None: ...

    def mark_writing(self, view: str, version: int, at: float) -> None: ...

    def mark_newest_event(self, view: str, version: int, at: float) -> None: ...

    def last_synced(self, view: str, version: int) -> float | None: ...

    def record_lag_sample(self, view: str, version: int, at: float, before: float | None, after: float) -> None: ...

    def store_id(self) -> str: ...

    def active_versions(self) -> dict[str, int]: ...

    def delete_matching(self, pattern: str) -> int: ...

    def expire_older_than(self, views: dict[str, int], pattern: str = "fh:{*") -> dict[str, int]: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class RedisOnlineStore:
    """Redis (or Valkey) as the online store; see featurehouse/online/keys.py for the layout."""

    def __init__(self, client: redis.Redis | RedisCluster, embedded: EmbeddedRedis | None = None):
        self.client = client
        self.embedded = embedded
        try:
            client.function_load(FUNCTIONS, replace=True)
        except NoPermissionError:
            pass  # a Redis user without FUNCTION LOAD (serving's, see `featurehouse online acl`): a writer loads them
        except redis.RedisError as e:
            raise _failure(e, "online store refused featurehouse's functions (Redis 7+ or Valkey needed)") from None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "RedisOnlineStore":
        """redis://, rediss:// (TLS), unix:// URLs, with user:password@ for AUTH/ACL.

        `redis+cluster://host:port` (or `rediss+cluster://`, or `?cluster=true`) uses redis-py's
        Redis Cluster client; an entity's hash stays in one slot thanks to its hash tag.
        """
        return cls(client_from_url(url, **kwargs))

    @classmethod
    def embedded_in(cls, directory: str | os.PathLike) -> "RedisOnlineStore":
        server = EmbeddedRedis(directory).start()
        return cls(redis.Redis(unix_socket_path=str(server.socket)), embedded=server)

    def close(self) -> None:
        self.client.close()
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError as e:
            raise _failure(e, "online store refused a command") from None

    # -- writes ------------------------------------------------------------------------------

    def write(self, view: FeatureView, rows: Iterable[OnlineRow], version: int | None = None,
              batch_size: int = 2000) -> WriteResult:
        """Guarded writes, pipelined in batches; returns how many were written and skipped as older.

        Row values come in `view.feature_columns` order and are stored in the view's recorded layout."""
        order = self.layout_for_write(view, version).order_from(view.feature_columns)
        encoded = ((entity_key(view.entity.name, r.key), to_micros(r.event_time), to_micros(r.created_at),
                    encode_values(r.values if order is None else [r.values[i] for i in order])) for r in rows)
        return self.write_encoded(view, encoded, version, batch_size)

    def layout_for_write(self, view: FeatureView, version: int | None = None) -> Layout:
        """The layout view@version is stored in: recorded by the first writer (atomically, HSETNX), and
        the one every later writer must encode its arrays in. Raises LayoutConflict when the view's
        columns are no longer the stored ones."""
        version = view.version if version is None else version
        mine = Layout(view.name, version, view.feature_columns, tuple(f.data_type for f in view.features))
        try:
            if self.client.hsetnx(LAYOUTS, mine.field, mine.to_json()):
                return mine
            recorded = self.client.hget(LAYOUTS, mine.field)
            assert recorded is not None  # HSETNX refused: the field is set
            stored = Layout.from_json(mine.field, recorded)
        except redis.RedisError as e:
            raise _failure(e, "online store refused a command") from None
        stored.order_from(mine.columns)  # a different set of columns is a conflict
        return stored

    def layouts(self) -> dict[str, Layout]:
        """Every recorded layout, by `view@N`."""
        return parse_layouts(self.client.hgetall(LAYOUTS))

    def write_encoded(self, view: FeatureView, items: Iterable[tuple[str, int, int | None, bytes]],
                      version: int | None = None, batch_size: int = 2000, restate: bool = False) -> WriteResult:
        """(entity key, event micros, created micros or None, payload) items through the guard.

        On one server, each batch is one fh_guard_batch call (one command for hundreds of rows); on a
        cluster, where one call's keys must share a slot, one call per row, pipelined per node. With `restate`
        (a declared correction of the same version), equal-time values whose payload differs replace
        the stored ones (fh_restate_batch).
        """
        version = view.version if version is None else version
        vfield, tfield = value_field(view.name, version), time_field(view.name, version)
        result = WriteResult()
        chunk: list = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= batch_size:
                result.add(self._write_chunk(vfield, tfield, chunk, restate))
                chunk = []
        if chunk:
            result.add(self._write_chunk(vfield, tfield, chunk, restate))
        return result

    def _write_chunk(self, vfield: str, tfield: str, chunk: list, restate: bool = False) -> WriteResult:
        batch = "fh_restate_batch" if restate else "fh_guard_batch"
        try:
            if self._is_cluster:
                outcomes = per_node(cast("RedisCluster", self.client), [
                    (key, ("FCALL", batch, 1, key, vfield, tfield, et, -1 if ca is None else ca, payload))
                    for key, et, ca, payload in chunk])
            else:
                args: list = [vfield, tfield]
                for _key, et, ca, payload in chunk:
                    args += (et, -1 if ca is None else ca, payload)
                outcomes = [self.client.fcall(batch, len(chunk), *[c[0] for c in chunk], *args)]
        except redis.RedisError as e:
            raise _failure(e, "online store write failed") from None
        if not restate:
            written = sum(int(o) for o in outcomes)
            return WriteResult(written, len(chunk) - written)
        written, restated = (sum(int(o[i]) for o in outcomes) for i in (0, 1))
        return WriteResult(written, len(chunk) - written - restated, restated)

    # -- reads -------------------------------------------------------------------------------

    def read(self, entity_type: str, keys: Sequence[tuple], views: Sequence[tuple[FeatureView, int]]
             ) -> list[dict[str, ViewRecord | None]]:
        """For each key: {view@version: ViewRecord or None}, in one round trip for all keys and views.

        Values are named by the store's recorded layout, whatever order this process's registry has."""
        fields = []
        for view, version in views:
            fields += [value_field(view.name, version), time_field(view.name, version)]
        wanted = [value_field(view.name, version) for view, version in views]
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(LAYOUTS, wanted)  # only these views' layouts: the hash holds every view's
        for key in keys:
            pipe.hmget(entity_key(entity_type, key), fields)
        try:
            stored, *replies = pipe.execute()
        except redis.RedisError as e:
            raise _failure(e, "online store read failed") from None
        layouts = parse_layouts({f: text for f, text in zip(wanted, stored) if text is not None})
        out = []
        columns = [layouts[f].columns if f in layouts else () for f in wanted]
        for reply in replies:
            records: dict[str, ViewRecord | None] = {}
            for i, (view, version) in enumerate(views):
                payload, times = reply[2 * i], reply[2 * i + 1]
                name = f"{view.name}@{version}"
                if payload is None or times is None:
                    records[name] = None
                    continue
                et, ca = (int(x) for x in times.split(b":"))
                values = decode_values(payload)
                records[name] = ViewRecord(view.name, version, from_micros(et), None if ca < 0 else from_micros(ca),
                                           dict(zip(columns[i], values)))
            out.append(records)
        return out

    # -- active versions ---------------------------------------------------------------------

    def mark_synced(self, view: str, version: int, at: float) -> None:
        """When a batch sync of view@version last succeeded (epoch seconds, to the microsecond): for
        serving's stale flag, and for sync to tell a store that lost writes (it never goes back)."""
        self.client.fcall("fh_mark_max", 1, MATERIALIZER, f"{view}@{version}:synced_at", f"{at:.6f}")

    def mark_streamed(self, view: str, version: int, at: float) -> None:
        """When the consumer applies pushed rows to view@version (epoch seconds), set before they are
        written: it only moves forward, so serving can tell a store that went back in time between two
        syncs."""
        self.client.fcall("fh_mark_max", 1, MATERIALIZER, f"{view}@{version}:streamed_at", f"{at:.6f}")

    def mark_writing(self, view: str, version: int, at: float) -> None:
        """When a sync of view@version started writing (epoch seconds), set before its first write: a
        restore that rolls back the writes of a sync that never finished moves it back."""
        self.client.fcall("fh_mark_max", 1, MATERIALIZER, f"{view}@{version}:writing_at", f"{at:.6f}")

    def mark_newest_event(self, view: str, version: int, at: float) -> None:
        """The newest event time (epoch seconds) a sync or the stream has written for view@version: what a
        serving worker, which never opens the warehouse, can tell of the data's own age (it only moves forward)."""
        self.client.fcall("fh_mark_max", 1, MATERIALIZER, f"{view}@{version}:newest_event", f"{at:.6f}")

    def record_lag_sample(self, view: str, version: int, at: float, before: float | None, after: float) -> None:
        """One point of view@version's lag history (the catalog's sparkline): at epoch second `at`, the
        materializer's lag just before it caught up (`before`; None: unknown, a first sync) and just after."""
        record_lag_sample(self.client, f"{view}@{version}", at, before, after)

    def last_synced(self, view: str, version: int) -> float | None:
        value = self.client.hget(MATERIALIZER, f"{view}@{version}:synced_at")
        return None if value is None else float(value)

    def store_id(self) -> str:
        return store_id(self.client)

    def set_active_version(self, view: str, version: int) -> None:
        """The version serving reads for `view` (set by `featurehouse promote`)."""
        self.client.hset(ACTIVE_VERSIONS, view, version)

    def set_active_versions(self, active: dict[str, int]) -> None:
        """Every view's active version at once (sync derives them from the warehouse's version log)."""
        if active:
            self.client.hset(ACTIVE_VERSIONS, mapping={k: int(v) for k, v in active.items()})

    def active_versions(self) -> dict[str, int]:
        active = cast("dict[bytes, bytes]", self.client.hgetall(ACTIVE_VERSIONS))  # replies are bytes: never decoded
        return {k.decode(): int(v) for k, v in active.items()}

    # -- deletion and retention ----------------------------------------------------------------

    def delete_entity(self, entity_type: str, key: tuple) -> bool:
        return bool(self.client.delete(entity_key(entity_type, key)))

    def delete_matching(self, pattern: str) -> int:
        """Delete every entity hash whose key matches a SCAN glob (see keys.entity_key_pattern)."""
        deleted = 0
        batch = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += self.client.delete(*batch) if not self._is_cluster else sum(self.client.delete(k) for k in batch)
                batch = []
        if batch:
            deleted += self.client.delete(*batch) if not self._is_cluster else sum(self.client.delete(k) for k in batch)
        return deleted

    @property
    def _is_cluster(self) -> bool:
        return is_cluster(self.client)

    def expire_older_than(self, views: dict[str, int], pattern: str = "fh:{*") -> dict[str, int]:
        """Retention pass: remove each view's value whose event time is before its cutoff (micros).

        `views` maps a value field (`view@N`) to its cutoff. Returns removed values per field.
        """
        removed = {f: 0 for f in views}
        for key in self.client.scan_iter(match=pattern, count=1000):
            fields = list(views)
            times = cast("list[bytes | None]", self.client.hmget(key, [time_field(*_split(f)) for f in fields]))
            pipe = self.client.pipeline(transaction=False)
            doomed = []
            for field, stamp in zip(fields, times):
                if stamp is not None and int(stamp.split(b":")[0]) < views[field]:
                    pipe.fcall("fh_expire", 1, key, field, time_field(*_split(field)), stamp)
                    doomed.append(field)
            if doomed:
                for field, done in zip(doomed, pipe.execute()):
                    removed[field] += int(done)
        return removed


def _split(field: str) -> tuple[str, int]:
    name, _, version = field.rpartition("@")
    return name, int(version)


def store_id(client) -> str:
    """This online store's identity, made by its first user: two online stores fed from one warehouse
    (staging and production, a test server) keep separate sync histories. A restored snapshot keeps
    its id; a wiped store gets a new one (and a full sync)."""
    import uuid

    client.set(STORE_ID, uuid.uuid4().hex, nx=True)
    value = client.get(STORE_ID)
    return value.decode() if isinstance(value, bytes) else str(value)


def open_online_store(project_dir: str | os.PathLike | None = None, url: str | None = None) -> RedisOnlineStore:
    """FEATUREHOUSE_REDIS_URL (or `url`) when set; else an embedded server under <project>/.featurehouse/redis."""
    url = url or os.environ.get("FEATUREHOUSE_REDIS_URL")
    if url:
        return RedisOnlineStore.from_url(url)
    return RedisOnlineStore.embedded_in(project_server_dir(project_dir or "."))
