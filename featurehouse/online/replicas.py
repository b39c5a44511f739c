"""Reads from Redis Cluster replicas, never further behind their primary than a bound, which each
vector reports.

Redis replicates asynchronously: a replica answers with what it has applied, which may lack the last
writes its primary acknowledged. So a replica is read only while it is *proven* close: at time t0 a probe
reads its primary's replication offset (INFO replication, `master_repl_offset`); when the replica
later reports an applied offset (`slave_repl_offset`) at least that large, it holds every write the
primary acknowledged before t0, and a read from it at time `now` can miss at most what was written
in the last `now - t0` seconds. That is the bound a vector read from it reports (`behind_s`). A slot
whose replicas are not proven within `max_lag_s` (never probed, stalled, cut off from their primary),
or whose replica fails the read, is read from its primary, as without this option.

The probe runs on a thread of its own (a stalled replica must not stall a request), every
`probe_every_s`; the reads are the caller's (redis-py, or redis.asyncio in the HTTP app).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
import time
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

import redis

from featurehouse.errors import FeaturehouseError

MAX_LAG_CAP_S = 60.0
MIN_PROBE_EVERY_S = 0.01
PROBE_THREADS = 8
MAP_EVERY_S = 5.0  # the slot map is read again this often even when every node answers,
MAP_AGAIN_S = 0.5  # and this often while a node fails a probe or a shard shows no replica (one still syncing)


class ReplicaReadsSettingError(FeaturehouseError):
    """The `replica_reads` setting is not one featurehouse understands, or the store is no cluster."""


@dataclass(frozen=True)
class ReplicaReadsConfig:
    max_lag_s: float = 0.5  # a replica is read only while proven at most this far behind its primary
    probe_every_s: float = 0.1  # how often each primary's and replica's replication offset is read

    def __post_init__(self) -> None:
        if not 0.0 < self.max_lag_s <= MAX_LAG_CAP_S:
            raise ValueError(f"max_lag_s must be more than 0 and at most {MAX_LAG_CAP_S:g}, got {self.max_lag_s}")
        if not MIN_PROBE_EVERY_S <= self.probe_every_s < self.max_lag_s:
            raise ValueError(f"probe_every_s must be at least {MIN_PROBE_EVERY_S:g} (each probe asks every node) and "
                             f"less than max_lag_s ({self.max_lag_s:g}): a replica's proof ages by it between probes, "
                             f"got {self.probe_every_s}")


def replica_reads_config(value: Any) -> ReplicaReadsConfig | None:
    """The `replica_reads` setting (serve's YAML, or FEATUREHOUSE_REPLICA_READS as JSON): off (absent,
    false), on with the defaults (true), or a mapping of max_lag_s / probe_every_s."""
    from featurehouse.settings import dataclass_setting

    return dataclass_setting("replica_reads", value, ReplicaReadsConfig, ReplicaReadsSettingError,
                             '{"max_lag_s": 0.25}')


def replica_reads_setting(config: ReplicaReadsConfig | None) -> str:
    """The setting as FEATUREHOUSE_REPLICA_READS carries it to serve's workers."""
    import json

    return "false" if config is None else json.dumps(dataclasses.asdict(config))


class ReplicaLag:
    """What the probes proved: per (replica, primary), the latest time before which the replica holds
    every write its primary acknowledged. Times are the caller's clock (monotonic seconds)."""

    def __init__(self, keep: int = 256):
        self._offsets: dict[str, deque[tuple[float, int, str]]] = {}  # primary -> (probed at, offset, replid)
        self._proven: dict[tuple[str, str], float] = {}
        self.keep = keep
        self._lock = threading.Lock()  # the probe's threads record at once

    def primary_at(self, primary: str, at: float, offset: int, replid: str = "") -> None:
        """`primary`'s replication offset was `offset` when it was asked at `at` (asked at, not answered at:
        every write acknowledged before `at` is within the offset)."""
        with self._lock:
            self._offsets.setdefault(primary, deque(maxlen=self.keep)).append((at, offset, replid))

    def replica_applied(self, replica: str, primary: str, offset: int, replid: str = "") -> None:
        """`replica` reported `offset` applied: it holds what its primary had at the newest probe at or below it."""
        with self._lock:
            for at, primary_offset, primary_replid in reversed(self._offsets.get(primary, ())):
                if primary_replid != replid:  # offsets of another replication history (a restart, a failover) prove nothing
                    continue
                if primary_offset <= offset:
                    pair = (replica, primary)
                    if at > self._proven.get(pair, float("-inf")):
                        self._proven[pair] = at
                    return

    def forget(self, replica: str) -> None:
        """A replica that failed a read is proven again only by a later probe: reads stop paying its timeout."""
        with self._lock:
            for pair in [p for p in self._proven if p[0] == replica]:
                del self._proven[pair]

    def behind(self, replica: str, primary: str, now: float) -> float | None:
        """At most how many seconds `replica` is behind `primary` at `now`; None when nothing proves it."""
        at = self._proven.get((replica, primary))
        return None if at is None else max(0.0, now - at)


def replica_client(url: str, timeout_s: float) -> Any:
    """A sync cluster client for the router of a process that reads through redis.asyncio (serve's
    workers); a URL of one Redis is refused, as there are no replicas to read."""
    from featurehouse.online.connect import client_from_url, is_cluster

    client = client_from_url(url, socket_connect_timeout=timeout_s, socket_timeout=max(timeout_s, 1.0))
    if not is_cluster(client):
        client.close()
        raise ReplicaReadsSettingError("replica_reads needs a Redis Cluster URL (redis+cluster://host:port): "
                                       "a single Redis has no replicas featurehouse reads from")
    return client


class ReplicaRouter:
    """Chooses, per key, a replica proven within the bound, or the primary; probes in the background.

    `client` is redis-py's sync RedisCluster: its slot map (slot -> [primary, replicas...]) is what the
    HTTP app's asyncio client holds too, both read from CLUSTER SLOTS. The probe opens its own small
    connections (with a short timeout: a stalled replica must not hold the probe)."""

    def __init__(self, client: Any, config: ReplicaReadsConfig, clock: Callable[[], float] = time.monotonic,
                 probe: bool = True, read_timeout_s: float | None = None, owns_client: bool = False):
        self.client, self.config, self.clock = client, config, clock
        self.owns_client = owns_client  # closed with the router (the HTTP app's client of its own)
        self.lag = ReplicaLag()
        # a replica slower than this is passed over for its primary; `read_timeout_s` (the HTTP app gives half
        # its request timeout) leaves the primary time to answer within the request
        self.timeout_s = min(1.0, config.max_lag_s, read_timeout_s or 1.0)
        self._lock = threading.Lock()  # the probe thread and the reads make node clients
        self.replica_reads = self.primary_reads = 0  # entity reads, for /metrics
        self._node_clients: dict[str, redis.Redis] = {}
        self._async_clients: dict[str, Any] = {}
        self._map_read_at = self.clock()
        self._pool: ThreadPoolExecutor | None = None  # the probe's calls, one node each
        self._mapping: Any = None  # the slot map being read again (a Future), if any
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if probe:
            self._thread = threading.Thread(target=_probe_forever, args=(weakref.ref(self), self._stop),
                                            name="featurehouse-replica-probe", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the probe and close the node clients (the asyncio ones: `aclose`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            clients, self._node_clients = list(self._node_clients.values()), {}
        for c in clients:
            c.close()
        if self.owns_client:
            self.client.close()

    async def aclose(self) -> None:
        self.close()
        clients, self._async_clients = list(self._async_clients.values()), {}
        for c in clients:
            await c.aclose()

    def shards(self) -> dict[str, tuple[Any, list[Any]]]:
        """primary name -> (primary node, its replica nodes), from the client's slot map."""
        out: dict[str, tuple[Any, list[Any]]] = {}
        seen: set[int] = set()
        for nodes in list(self.client.nodes_manager.slots_cache.values()):
            if not nodes or id(nodes) in seen:
                continue
            seen.add(id(nodes))
            out.setdefault(nodes[0].name, (nodes[0], []))
            known = out[nodes[0].name][1]
            known.extend(n for n in nodes[1:] if n not in known)
        return out

    def probe(self) -> None:
        """Read every primary's offset, then every replica's applied offset, each node on a thread of its own
        (a frozen node costs its own shard a timeout, not every shard); a node that does not answer proves
        nothing this time, and the slot map is read again (a failover may have moved it)."""
        shards = self.shards()

        def primary(name: str, node: Any) -> bool:
            asked_at = self.clock()  # before asking: every write acknowledged earlier is within the offset
            info = self._node_client(node).info("replication")
            if info["role"] != "master":  # the map is stale: a failover made it a replica
                return False
            self.lag.primary_at(name, asked_at, int(info["master_repl_offset"]), info["master_replid"])
            return True

        def replica(name: str, node: Any) -> bool:
            info = self._node_client(node).info("replication")
            if info["role"] != "slave":
                return False
            self.lag.replica_applied(node.name, name, int(info["slave_repl_offset"]), info["master_replid"])
            return True

        answered = self._each([(primary, name, p) for name, (p, _) in shards.items()])
        answered += self._each([(replica, name, r) for name, (_, rs) in shards.items() for r in rs])
        failed = not all(answered)
        since = self.clock() - self._map_read_at
        if since >= MAP_EVERY_S or (since >= MAP_AGAIN_S and (failed or not all(r for _, r in shards.values()))):
            self._refresh_map()

    def _each(self, calls: list[tuple[Callable[[str, Any], bool], str, Any]]) -> list[bool]:
        """Run the probe calls at once; one that raises (a node down, slow, or answering oddly) is False."""
        futures = [self._executor().submit(call, name, node) for call, name, node in calls]
        out = []
        for future in futures:
            try:
                out.append(future.result())
            except (redis.RedisError, OSError, KeyError, ValueError):
                out.append(False)
        return out

    def _refresh_map(self) -> None:
        """Read the slot map again (CLUSTER SLOTS), as redis-py does after a MOVED: the probe never gets one.
        On a thread of the pool, not waited for: redis-py asks its start-up nodes with the client's own
        timeouts (none by default), so a frozen node would hold the probe, and every proof with it."""
        if self._mapping is not None and not self._mapping.done():
            return  # one reading at a time: the last one still waits on a node
        self._map_read_at = self.clock()
        self._mapping = self._executor().submit(self._read_map)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="featurehouse-replica-probe")
        return self._pool

    def _read_map(self) -> None:
        from redis.exceptions import RedisClusterException

        manager = self.client.nodes_manager
        try:
            if "disconnect_startup_nodes_pools" in inspect.signature(manager.initialize).parameters:
                # redis-py >= 7.2: the start-up nodes' connections stay open for the reads in flight
                manager.initialize(disconnect_startup_nodes_pools=False)
            else:
                manager.initialize()
        except (redis.RedisError, OSError, RedisClusterException):
            pass  # no node answered CLUSTER SLOTS now: the old map stands, and the probes say who is proven

    def _node_client(self, node: Any) -> redis.Redis:
        """A client of the node made like the cluster client's own, but with a short timeout: a replica
        that stalls costs a read that much, then its primary answers."""
        with self._lock:
            c = self._node_clients.get(node.name)
            if c is None:
                if self._stop.is_set():
                    raise redis.ConnectionError("replica reads are closed")
                kwargs = dict(node.redis_connection.connection_pool.connection_kwargs)
                kwargs.update(socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s)
                c = self._node_clients[node.name] = redis.Redis(
                    connection_pool=redis.ConnectionPool(
                        connection_class=node.redis_connection.connection_pool.connection_class, **kwargs))
            return c

    def route(self, keys: Sequence[str]) -> tuple[dict[str, list[int]], list[int], list[float]]:
        """(replica name -> indexes of the keys to read there, indexes to read from their primary, and
        per key how far behind its read may be: 0 on a primary)."""
        cache = self.client.nodes_manager.slots_cache
        now, bound = self.clock(), self.config.max_lag_s
        on_replica: dict[str, list[int]] = {}
        on_primary: list[int] = []
        behind = [0.0] * len(keys)
        for i, key in enumerate(keys):
            nodes = cache.get(self.client.keyslot(key))
            best, best_lag = None, bound
            if nodes and len(nodes) > 1:
                primary = nodes[0].name
                for replica in nodes[1:]:
                    lag = self.lag.behind(replica.name, primary, now)
                    if lag is not None and lag <= best_lag:
                        best, best_lag = replica, lag
            if best is None:
                on_primary.append(i)
            else:
                on_replica.setdefault(best.name, []).append(i)
                behind[i] = best_lag
        self.replica_reads += len(keys) - len(on_primary)
        self.primary_reads += len(on_primary)
        return on_replica, on_primary, behind

    def replica_node(self, name: str) -> Any:
        return self.client.nodes_manager.nodes_cache.get(name)

    def read_sync(self, keys: Sequence[str], command: Callable[[str], tuple], primary_read: Callable[[list[str]], list]
                  ) -> tuple[list[Any], list[float]]:
        """Each key's reply to `command(key)`, from a proven replica where there is one; the rest (and any a
        replica fails) through `primary_read`."""
        on_replica, on_primary, behind = self.route(keys)
        replies: list[Any] = [None] * len(keys)
        for name, indexes in on_replica.items():
            node = self.replica_node(name)
            got = None
            if node is not None and node.redis_connection is not None:
                try:
                    pipe = self._node_client(node).pipeline(transaction=False)
                    pipe.execute_command("READONLY")  # this connection may read its primary's slots
                    for i in indexes:
                        pipe.execute_command(*command(keys[i]))
                    got = pipe.execute(raise_on_error=False)[1:]
                except (redis.ConnectionError, redis.TimeoutError):
                    got = None
            self._took(name, indexes, got, replies, behind, on_primary)
        if on_primary:
            for i, answer in zip(on_primary, primary_read([keys[i] for i in on_primary])):
                replies[i] = answer
        return replies, behind

    async def read_async(self, async_cluster: Any, keys: Sequence[str], command: Callable[[str], tuple],
                         primary_read: Callable[[list[str]], Awaitable[list]]) -> tuple[list[Any], list[float]]:
        """`read_sync` on redis.asyncio: the replicas are read at once (one pipeline each, concurrently)
        over connections made like `async_cluster`'s own to that node."""
        on_replica, on_primary, behind = self.route(keys)
        replies: list[Any] = [None] * len(keys)

        async def one(name: str, indexes: list[int]) -> tuple[str, list[int], list[Any] | None]:
            client = self._async_client(async_cluster, name)
            if client is None:
                return name, indexes, None
            try:
                async with asyncio.timeout(self.timeout_s), client.pipeline(transaction=False) as pipe:
                    pipe.execute_command("READONLY")
                    for i in indexes:
                        pipe.execute_command(*command(keys[i]))
                    return name, indexes, (await pipe.execute(raise_on_error=False))[1:]
            except (redis.ConnectionError, redis.TimeoutError, OSError, TimeoutError):
                return name, indexes, None

        for name, indexes, got in await asyncio.gather(*(one(n, ix) for n, ix in on_replica.items())):
            self._took(name, indexes, got, replies, behind, on_primary)
        if on_primary:
            for i, answer in zip(on_primary, await primary_read([keys[i] for i in on_primary])):
                replies[i] = answer
        return replies, behind

    def _took(self, replica: str, indexes: list[int], got: list[Any] | None, replies: list[Any], behind: list[float],
              on_primary: list[int]) -> None:
        """A replica's answers for `indexes` (None: it failed them all, and is not read again until a probe
        proves it) into `replies`; what it could not answer goes to `on_primary`, 0 behind, and is counted
        as a primary read."""
        if got is None:
            self.lag.forget(replica)
        moved = 0
        for n, i in enumerate(indexes):
            answer = None if got is None else got[n]
            if got is None or _unknown(answer):
                on_primary.append(i)
                behind[i] = 0.0
                moved += 1
            else:
                replies[i] = answer
        self.replica_reads -= moved
        self.primary_reads += moved

    def _async_client(self, async_cluster: Any, name: str) -> Any:
        client = self._async_clients.get(name)
        if client is None:
            import redis.asyncio as aioredis

            node = async_cluster.nodes_manager.nodes_cache.get(name)
            if node is None:  # the asyncio client does not know the node (yet): its primary is read
                return None
            client = self._async_clients[name] = aioredis.Redis(connection_pool=aioredis.ConnectionPool(
                connection_class=node.connection_class, **node.connection_kwargs))
        return client


def _unknown(answer: Any) -> bool:
    """A replica's answer that its primary must give instead: an error (MOVED: the slot left; a lost
    replica), or nothing at all for the key, which may be a key its slot's migration already moved
    (a replica does not know the slot is MIGRATING; its primary answers ASK and is followed)."""
    if isinstance(answer, Exception) or answer is None:
        return True
    return isinstance(answer, list) and all(v is None for v in answer)


def _probe_forever(router_ref: "weakref.ref[ReplicaRouter]", stop: threading.Event) -> None:
    """Probe until the router is closed or gone; holds no strong reference between probes."""
    while not stop.is_set():
        router = router_ref()
        if router is None:
            return
        every = router.config.probe_every_s
        try:
            router.probe()
        except Exception:  # noqa: BLE001 - a probe that fails proves nothing; reads fall back to primaries
            pass
        del router
        stop.wait(every)
