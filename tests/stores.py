"""A FeatureStore over a hand-built registry, the test's warehouse and a flushed Redis database."""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

from featurehouse import FeatureStore
from featurehouse.online.store import RedisOnlineStore
from featurehouse.registry.model import Registry


@contextlib.contextmanager
def store_over(registry: Registry, warehouse, redis_url: str, drop: Sequence[str] = (), sync: bool = True
               ) -> Iterator[FeatureStore]:
    """`drop` names featurehouse.* log tables a previous test may have left; `sync` fills Redis first."""
    for table in drop:
        warehouse.execute(f"DROP TABLE IF EXISTS featurehouse.{table}")
    store = FeatureStore.from_registry(registry, warehouse)
    online = RedisOnlineStore.from_url(redis_url)
    online.client.flushdb()
    store.use_online_store(online)
    try:
        if sync:
            store.sync()
        yield store
    finally:
        online.close()


@contextlib.contextmanager
def project_store(project, redis_url: str) -> Iterator[FeatureStore]:
    """A FeatureStore over a dbt project on disk, its online store a flushed Redis database."""
    online = RedisOnlineStore.from_url(redis_url)
    online.client.flushdb()
    store = FeatureStore(project)
    store.use_online_store(online)
    try:
        yield store
    finally:
        store.close()
