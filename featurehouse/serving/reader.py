"""Reading vectors from Redis: in-process (redis-py) and for the HTTP app (redis.asyncio).

Request plans are cached per (entity type, names, model); the active versions and the
materializers' lag are re-read at most once per `refresh_s`, so a request costs one round trip.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Sequence

import redis

from featurehouse.online.store import ACTIVE_VERSIONS, FUNCTIONS
from featurehouse.registry.model import Registry
from featurehouse.serving.vectors import (Freshness, FeatureVector, ReadPlan, assemble_many, parse_ids,
                                          now_micros, plan_request, redis_key)
from featurehouse.online.keys import MATERIALIZER

MAX_IDS = 1000


class _Cached:
    def __init__(self, registry: Registry, refresh_s: float = 1.0, max_ids: int = MAX_IDS):
        self.registry, self.refresh_s, self.max_ids = registry, refresh_s, max_ids
        self.active: dict[str, int] = {}
        self._active_key: tuple = ()
        self.freshness = Freshness()
        self._refreshed = 0.0
        self.plan = lru_cache(maxsize=1024)(self._plan)

    def _plan(self, entity_type: str, names: tuple[str, ...] | None, model: str | None,
              active: tuple[tuple[str, int], ...]) -> ReadPlan:
        return plan_request(self.registry, entity_type, names, model, dict(active))

    def _due(self) -> bool:
        return time.monotonic() - self._refreshed >= self.refresh_s

    def _apply(self, active: dict, materializer: dict) -> None:
        self.active = {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in active.items()}
        self._active_key = tuple(sorted(self.active.items()))
        self.freshness = Freshness.from_hash(materializer)
        self._refreshed = time.monotonic()

    def _prepare(self, entity_type: str, ids: Sequence[str], names, model) -> tuple[ReadPlan, list[tuple]]:
        from featurehouse.serving.vectors import BadRequest

        if not ids:
            raise BadRequest("no entity ids given")
        if len(ids) > self.max_ids:
            raise BadRequest(f"too many ids: {len(ids)} (at most {self.max_ids})")
        plan = self.plan(entity_type, tuple(names) if names else None, model, self._active_key)
        return plan, parse_ids(self.registry, entity_type, ids)


class OnlineReader(_Cached):
    """In-process reads for models that run in Python (no HTTP)."""

    def __init__(self, registry: Registry, client, **kwargs):
        super().__init__(registry, **kwargs)
        self.client = client
        self.cluster = type(client).__name__ == "RedisCluster"

    def get(self, entity_type: str, ids: Sequence[str], names: Sequence[str] | None = None,
            model: str | None = None) -> list[FeatureVector]:
        if self._due():
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(ACTIVE_VERSIONS)
            pipe.hgetall(MATERIALIZER)
            self._apply(*pipe.execute())
        plan, keys = self._prepare(entity_type, ids, names, model)
        names = [redis_key(plan, key) for key in keys]
        if len(names) == 1:
            replies = [self.client.hmget(names[0], plan.fields)]
        elif not self.cluster:
            try:
                replies = self.client.fcall_ro("fh_hmget_many", len(names), *names, *plan.fields)
            except redis.ResponseError as e:  # a server featurehouse never wrote to: load the library
                if "function" not in str(e).lower():
                    raise
                self.client.function_load(FUNCTIONS, replace=True)
                replies = self.client.fcall_ro("fh_hmget_many", len(names), *names, *plan.fields)
        else:
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.hmget(name, plan.fields)
            replies = pipe.execute()
        return assemble_many(plan, [str(i) for i in ids], replies, now_micros(), self.freshness)


class AsyncOnlineReader(_Cached):
    """The same reads on redis.asyncio, for the HTTP app's event loop."""

    def __init__(self, registry: Registry, client, **kwargs):
        super().__init__(registry, **kwargs)
        self.client = client
        self.cluster = type(client).__name__ == "RedisCluster"

    async def get(self, entity_type: str, ids: Sequence[str], names: Sequence[str] | None = None,
                  model: str | None = None) -> list[FeatureVector]:
        if self._due():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(ACTIVE_VERSIONS)
                pipe.hgetall(MATERIALIZER)
                self._apply(*(await pipe.execute()))
        plan, keys = self._prepare(entity_type, ids, names, model)
        names = [redis_key(plan, key) for key in keys]
        if len(names) == 1:
            replies = [await self.client.hmget(names[0], plan.fields)]
        elif not self.cluster:
            try:
                replies = await self.client.fcall_ro("fh_hmget_many", len(names), *names, *plan.fields)
            except redis.ResponseError as e:
                if "function" not in str(e).lower():
                    raise
                await self.client.function_load(FUNCTIONS, replace=True)
                replies = await self.client.fcall_ro("fh_hmget_many", len(names), *names, *plan.fields)
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hmget(name, plan.fields)
                replies = await pipe.execute()
        return assemble_many(plan, [str(i) for i in ids], replies, now_micros(), self.freshness)
