"""Reading vectors from Redis: in-process (redis-py) and for the HTTP app (redis.asyncio).

Request plans are cached per (entity type, names, model); the active versions and the
materializers' lag are re-read at most once per `refresh_s`, so a request costs one round trip.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Sequence

import redis

from featurehouse.online.store import ACTIVE_VERSIONS, FUNCTIONS
from featurehouse.registry.model import Registry
from featurehouse.serving.vectors import (Freshness, FeatureVector, ReadPlan, assemble_many, mark_guardrails,
                                          now_micros, parse_ids, plan_request, redis_key)
from featurehouse.online.keys import DEPLOY_CHECKS, MATERIALIZER, MODEL_VERSIONS

MAX_IDS = 1000


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Cached:
    def __init__(self, registry: Registry, refresh_s: float = 1.0, max_ids: int = MAX_IDS):
        self.registry, self.refresh_s, self.max_ids = registry, refresh_s, max_ids
        self.active: dict[str, int] = {}
        self._active_key: tuple = ()
        self.freshness = Freshness()
        self.model_versions: dict[str, list[str]] = {}  # name@version -> versioned features it was trained on
        self.deploy_checks: dict[str, dict] = {}  # name@version -> its last deploy check
        self._models_key: tuple = ()
        self._refreshed = 0.0
        self.plan = lru_cache(maxsize=1024)(self._plan)

    def _plan(self, entity_type: str, names: tuple[str, ...] | None, model: str | None,
              active: tuple[tuple[str, int], ...], models: tuple = ()) -> ReadPlan:
        return plan_request(self.registry, entity_type, names, model, dict(active), self.model_versions)

    def _due(self) -> bool:
        return time.monotonic() - self._refreshed >= self.refresh_s

    def _apply(self, active: dict, materializer: dict, models: dict | None = None, checks: dict | None = None) -> None:
        self.active = {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in active.items()}
        self._active_key = tuple(sorted(self.active.items()))
        self.freshness = Freshness.from_hash(materializer)
        self.model_versions = {_text(k): json.loads(v)["features"] for k, v in (models or {}).items()}
        self._models_key = tuple(sorted((k, tuple(v)) for k, v in self.model_versions.items()))
        self.deploy_checks = {_text(k): json.loads(v) for k, v in (checks or {}).items()}
        self._refreshed = time.monotonic()

    def _refresh_commands(self, pipe) -> None:
        pipe.hgetall(ACTIVE_VERSIONS)
        pipe.hgetall(MATERIALIZER)
        pipe.hgetall(MODEL_VERSIONS)
        pipe.hgetall(DEPLOY_CHECKS)

    def _judge(self, vectors: list[FeatureVector], model: str | None) -> list[FeatureVector]:
        """Vectors served for a model carry its guardrails: values not ok, and a failed deploy check."""
        if model:
            check = self.deploy_checks.get(model) if "@" in model else None
            for vector in vectors:
                mark_guardrails(vector, model, check, registered="@" in model and model in self.model_versions)
        return vectors

    def _prepare(self, entity_type: str, ids: Sequence[str], names, model) -> tuple[ReadPlan, list[tuple]]:
        from featurehouse.serving.vectors import BadRequest

        if not ids:
            raise BadRequest("no entity ids given")
        if len(ids) > self.max_ids:
            raise BadRequest(f"too many ids: {len(ids)} (at most {self.max_ids})")
        plan = self.plan(entity_type, tuple(names) if names else None, model, self._active_key, self._models_key)
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
            self._refresh_commands(pipe)
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
        return self._judge(assemble_many(plan, [str(i) for i in ids], replies, now_micros(), self.freshness), model)


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
                self._refresh_commands(pipe)
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
        return self._judge(assemble_many(plan, [str(i) for i in ids], replies, now_micros(), self.freshness), model)
