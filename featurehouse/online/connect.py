"""One reading of a Redis URL for every process: the online store, sync, the stream consumer and the
HTTP server's asyncio client all connect to what the same URL says, a single Redis or a Redis Cluster.

`redis+cluster://host:port` (or `rediss+cluster://`, or `?cluster=true` on any URL) is a Redis Cluster,
reached through redis-py's cluster client from one start-up node; every other URL is redis-py's own
(redis://, rediss:// for TLS, unix://, with user:password@ for ACL users).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis
    import redis.asyncio as aioredis
    from redis.cluster import RedisCluster

_CLUSTER_FLAG = re.compile(r"([?&])cluster=true(&?)", re.IGNORECASE)


@dataclass(frozen=True)
class RedisAddress:
    url: str  # what redis-py's from_url takes
    cluster: bool


def parse_url(url: str) -> RedisAddress:
    cluster = "+cluster://" in url
    plain = url.replace("+cluster://", "://")
    flagged = _CLUSTER_FLAG.search(plain)
    if flagged:
        cluster = True
        keep = flagged.group(1) if flagged.group(2) else ""
        plain = plain[:flagged.start()] + keep + plain[flagged.end():]
        plain = plain.rstrip("?&")
    return RedisAddress(plain, cluster)


CLUSTER_NODE = ("the online store answered as a Redis Cluster node (MOVED): give its URL as "
                "redis+cluster://host:port (or add ?cluster=true); docs/online-store.md")


def client_from_url(url: str, **kwargs: Any) -> "redis.Redis | RedisCluster":
    """A client for the URL. A cluster client reads the slot map at once: a cluster it cannot reach is
    redis-py's ConnectionError here (as a single server's is at its first command), not the
    RedisClusterException redis-py raises, which no caller would take for "unreachable"."""
    import redis

    address = parse_url(url)
    if address.cluster:
        from redis.cluster import RedisCluster
        from redis.exceptions import RedisClusterException

        try:
            return RedisCluster.from_url(address.url, **kwargs)
        except RedisClusterException as e:
            raise redis.ConnectionError(f"Redis Cluster at {_where(address.url)}: {e}") from e
    return redis.Redis.from_url(address.url, **kwargs)


def cluster_node_error(error: BaseException | None) -> str | None:
    """CLUSTER_NODE when `error` (or what it was raised from) is a MOVED or ASK answer: a single-server
    URL given for a cluster node."""
    seen = 0
    while error is not None and seen < 5:
        redis_errors = sys.modules.get("redis.exceptions")
        if redis_errors is not None and isinstance(error, redis_errors.AskError):  # MovedError is one
            return CLUSTER_NODE
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _where(url: str) -> str:
    """host:port of a URL, without its credentials."""
    from urllib.parse import urlparse

    u = urlparse(url)
    return f"{u.hostname}:{u.port}" if u.hostname else url


def async_client_from_url(url: str, **kwargs: Any) -> "aioredis.Redis | aioredis.RedisCluster":
    address = parse_url(url)
    import redis.asyncio as aioredis

    if address.cluster:
        return aioredis.RedisCluster.from_url(address.url, **kwargs)
    return aioredis.Redis.from_url(address.url, **kwargs)


def is_cluster(client: Any) -> bool:
    """Whether a client (sync or asyncio) talks to a Redis Cluster: one call's keys must share a slot."""
    return type(client).__name__ == "RedisCluster"
