"""Reading vectors from Redis: in-process (redis-py) and for the HTTP app (redis.asyncio).

Request plans are cached per (entity type, names, model); the active versions and the
materializers' lag are re-read at most once per `refresh_s`, so a request costs one round trip.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Sequence

from featurehouse.online.store import ACTIVE_VERSIONS
from featurehouse.registry.model import Registry
from featurehouse.serving.vectors import (Freshness, FeatureVector, ReadPlan, assemble, parse_ids, plan_request,
                                          redis_key, utcnow)
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
        lags, synced = {}, {}
        for k, v in materializer.items():
            k = k.decode() if isinstance(k, bytes) else k
            view, _, what = k.rpartition(":")
            if what == "stream_lag_s":
                lags[view] = float(v)
            elif what == "synced_at":
                synced[view] = float(v)
        self.freshness = Freshness(lags, synced)
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

    def get(self, entity_type: str, ids: Sequence[str], names: Sequence[str] | None = None,
            model: str | None = None) -> list[FeatureVector]:
        if self._due():
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(ACTIVE_VERSIONS)
            pipe.hgetall(MATERIALIZER)
            self._apply(*pipe.execute())
        plan, keys = self._prepare(entity_type, ids, names, model)
        if len(keys) == 1:
            replies = [self.client.hmget(redis_key(plan, keys[0]), plan.fields)]
        else:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(redis_key(plan, key), plan.fields)
            replies = pipe.execute()
        now = utcnow()
        return [assemble(plan, str(i), r, now, self.freshness) for i, r in zip(ids, replies)]


class AsyncOnlineReader(_Cached):
    """The same reads on redis.asyncio, for the HTTP app's event loop."""

    def __init__(self, registry: Registry, client, **kwargs):
        super().__init__(registry, **kwargs)
        self.client = client

    async def get(self, entity_type: str, ids: Sequence[str], names: Sequence[str] | None = None,
                  model: str | None = None) -> list[FeatureVector]:
        if self._due():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(ACTIVE_VERSIONS)
                pipe.hgetall(MATERIALIZER)
                self._apply(*(await pipe.execute()))
        plan, keys = self._prepare(entity_type, ids, names, model)
        if len(keys) == 1:
            replies = [await self.client.hmget(redis_key(plan, keys[0]), plan.fields)]
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(redis_key(plan, key), plan.fields)
                replies = await pipe.execute()
        now = utcnow()
        return [assemble(plan, str(i), r, now, self.freshness) for i, r in zip(ids, replies)]
