"""One reading of a Redis URL for every process: the online store, sync, the stream consumer and the
HTTP server's asyncio client all connect to what the same URL says, a single Redis or a Redis Cluster.

`redis+cluster://host:port` (or `rediss+cluster://`, or `?cluster=true` on any URL) is a Redis Cluster,
reached through redis-py's cluster client from one start-up node; every other URL is redis-py's own
(redis://, rediss:// for TLS, unix://, with user:password@ for ACL users).
"""

from __future__ import annotations

import re
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


def client_from_url(url: str, **kwargs: Any) -> "redis.Redis | RedisCluster":
    address = parse_url(url)
    if address.cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(address.url, **kwargs)
    import redis

    return redis.Redis.from_url(address.url, **kwargs)


def async_client_from_url(url: str, **kwargs: Any) -> "aioredis.Redis | aioredis.RedisCluster":
    address = parse_url(url)
    import redis.asyncio as aioredis

    if address.cluster:
        return aioredis.RedisCluster.from_url(address.url, **kwargs)
    return aioredis.Redis.from_url(address.url, **kwargs)


def is_cluster(client: Any) -> bool:
    """Whether a client (sync or asyncio) talks to a Redis Cluster: one call's keys must share a slot."""
    return type(client).__name__ == "RedisCluster"
