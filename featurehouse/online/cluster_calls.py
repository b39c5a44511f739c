"""Many single-slot commands on a Redis Cluster, one plain pipeline per node.

On a cluster one command's keys must share a slot, so a sync of 2,000 entities is 2,000 guarded calls
and a batch read of 100 vectors is 100 HMGETs. redis-py's ClusterPipeline routes each command itself
and costs ~100 µs of Python per command (10,500 guarded writes/s measured); grouping the commands by
the node that owns their slot and sending each group down that node's own connection as a plain
pipeline does the same work at ~100,000/s. The slot map can change under us (a failover, a
resharding): a command answered MOVED, ASK, TRYAGAIN or CLUSTERDOWN, or lost with its node's
connection, is sent again through redis-py's cluster pipeline, which follows redirects and refreshes
the map. Only commands that are safe to repeat belong here (reads, and featurehouse's guarded writes,
whose event-time guard makes a repeat a no-op).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import redis
from redis.exceptions import AskError, ClusterDownError, RedisClusterException, SlotNotCoveredError, TryAgainError

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

# Answers that mean "not here, not now": the command is sent again through the cluster client.
_REROUTE = (AskError, TryAgainError, ClusterDownError, redis.ConnectionError, redis.TimeoutError)


def per_node(client: "RedisCluster", calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    """Run `calls` (each: its key, then the whole command) and return their replies in order."""
    replies: list[Any] = [None] * len(calls)
    groups: dict[str, list[int]] = {}
    nodes: dict[str, Any] = {}
    again: list[int] = []
    for i, (key, _) in enumerate(calls):
        node = _owner(client, key)
        if node is None:  # no owner known for the slot now: the cluster client finds one, or says why not
            again.append(i)
            continue
        groups.setdefault(node.name, []).append(i)
        nodes[node.name] = node
    for name, indexes in groups.items():
        connection = nodes[name].redis_connection
        if connection is None:
            again += indexes
            continue
        pipe = connection.pipeline(transaction=False)
        for i in indexes:
            pipe.execute_command(*calls[i][1])
        try:
            answers = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError):
            again += indexes
            continue
        for i, answer in zip(indexes, answers):
            if isinstance(answer, _REROUTE):
                again.append(i)
            elif isinstance(answer, Exception):
                raise answer
            else:
                replies[i] = answer
    if again:
        pipe = client.pipeline(transaction=False)
        for i in again:
            pipe.execute_command(*calls[i][1])
        try:
            answers = pipe.execute()
        except RedisClusterException as e:  # not a RedisError: callers would see a traceback, not a store error
            raise redis.ConnectionError(f"Redis Cluster: {e}") from e
        for i, answer in zip(again, answers):
            replies[i] = answer
    return replies


def _owner(client: "RedisCluster", key: str) -> Any:
    """The node the client's slot map says owns `key`, or None (a slot no node covers now)."""
    try:
        return client.get_node_from_key(key)
    except SlotNotCoveredError:
        return None


def on_node(client: "RedisCluster", key: str, command: tuple[Any, ...]) -> Any:
    """One command straight down the connection of the node that owns `key`'s slot (redis-py's own
    routing costs more than the read); rerouted through the cluster client as `per_node` does."""
    node = _owner(client, key)
    if node is not None and node.redis_connection is not None:
        try:
            return node.redis_connection.execute_command(*command)
        except _REROUTE:
            pass
    try:
        return client.execute_command(*command)
    except RedisClusterException as e:
        raise redis.ConnectionError(f"Redis Cluster: {e}") from e
