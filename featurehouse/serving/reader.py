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

from featurehouse.access.audit import AuditBuffer
from featurehouse.access.policy import AccessDenied, Decision, Policy
from featurehouse.clock import utc_now
from featurehouse.online.cluster_calls import on_node, per_node
from featurehouse.online.connect import is_cluster
from featurehouse.online.keys import (
    ACTIVE_VERSIONS,
    AUDIT_KEY,
    DEPLOY_CHECKS,
    LAYOUTS,
    MATERIALIZER,
    MODEL_VERSIONS,
    mark_behind,
)
from featurehouse.online.layout import Layout, parse_layouts
from featurehouse.online.replicas import ReplicaRouter
from featurehouse.online.store import FUNCTIONS
from featurehouse.registry.model import Registry
from featurehouse.serving.near_cache import NearCache
from featurehouse.serving.vectors import (
    FeatureVector,
    Freshness,
    ReadPlan,
    assemble_many,
    integer_keys,
    mark_guardrails,
    now_micros,
    parse_ids,
    plan_request,
    redis_key,
)

MAX_IDS = 1000


# A rolled-back mark is made good by: a sync finishing (for a sync's marks), the consumer caught up
# (for its own: it applies again what the restored stream holds as not yet applied).
_RECOVERED_BY = {"synced_at": "synced_at", "writing_at": "synced_at", "streamed_at": "stream_caught_up"}


def _made_good(freshness: Freshness, kind: str, view: str, threshold: float) -> bool:
    if kind == "synced_at":
        return not mark_behind(freshness.synced_at.get(view), threshold)
    # the consumer looked after the rolled-back writes and found nothing waiting
    checked = freshness.stream_checked_at.get(view)
    return checked is not None and checked >= threshold and freshness.stream_lag_s.get(view) == 0.0


def utc_today():
    """Grants end on a day (UTC)."""
    return utc_now().date()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Cached:
    """What both transports share: the online store's own state (active versions, layouts, model
    versions, deploy checks, materializer lag), re-read at most once per `refresh_s`, and request
    plans built from it. Plans are cached per (entity type, names, model) and dropped whenever that
    state changes, so a request costs one round trip and no hashing of the whole state."""

    def __init__(self, registry: Registry, refresh_s: float = 1.0, max_ids: int = MAX_IDS):
        self.registry, self.refresh_s, self.max_ids = registry, refresh_s, max_ids
        self.active: dict[str, int] = {}
        self.layouts: dict[str, Layout] = {}
        self.freshness = Freshness()
        self.model_versions: dict[str, list[str]] = {}  # name@version -> versioned features it was trained on
        self.deploy_checks: dict[str, dict] = {}  # name@version -> its last deploy check
        self._state: tuple = ()
        self._refreshed = 0.0
        self._marks_high: dict[str, dict[str, float]] = {}  # mark kind -> the newest mark seen per view@N
        self._rolled_back: dict[str, dict[str, float]] = {}  # view@N -> mark kind -> what it must reach again
        self.plan = lru_cache(maxsize=1024)(self._plan)
        self.integer_keys = lru_cache(maxsize=256)(lambda entity_type: integer_keys(registry, entity_type))
        self.policy = Policy(registry)
        self.authorize = lru_cache(maxsize=4096)(self._authorize)
        self.audit: AuditBuffer | None = None  # set by the caller that flushes it (serving app, FeatureStore)
        self.near_cache: NearCache | None = None  # hot entities' replies, bounded by their views' SLOs (opt-in)
        self.replicas: ReplicaRouter | None = None  # reads from cluster replicas proven close (opt-in)

    def _plan(self, entity_type: str, names: tuple[str, ...] | None, model: str | None) -> ReadPlan:
        return plan_request(self.registry, entity_type, names, model, self.active, self.model_versions, self.layouts)

    def _authorize(self, principal: str, plan: ReadPlan, model: str | None, day) -> tuple[str | None, ...]:
        """The access decision for every view a plan reads (cached per principal, plan and day: grants end
        on a day); the purpose of the grant each view is read under (None: no grant needed), for the audit.
        A denial is decided from the plan alone, before the store is read, so it says nothing of whether
        the entity exists."""
        spec = self.registry.models.get(model.partition("@")[0]) if model else None
        if model and spec is None:  # a registered model version whose exposure is gone: its team is unknown
            first = plan.views[0].view
            raise AccessDenied(Decision(False, principal, first.versioned_name, first.sensitivity,
                                        f"model '{model}' has no exposure in the project, so its team is unknown",
                                        remedy="declare the model's exposure with meta.featurehouse.team",
                                        model=model))
        purposes = []
        for planned in plan.views:
            decision = self.policy.decide(principal, planned.view, day, spec)
            if not decision.allowed:
                raise AccessDenied(decision)
            purposes.append(decision.grant.purpose if decision.grant else None)
        return tuple(purposes)

    def _due(self) -> bool:
        return time.monotonic() - self._refreshed >= self.refresh_s

    def _apply(self, active: dict, layouts: dict, materializer: dict, models: dict | None = None,
               checks: dict | None = None, audit_key: bytes | None = None) -> None:
        if self.audit is not None and audit_key:
            self.audit.key = bytes.fromhex(_text(audit_key))
        state = (active, layouts, models)
        if state != self._state:
            self._state = state
            self.active = {_text(k): int(v) for k, v in active.items()}
            self.layouts = parse_layouts(layouts)
            self.model_versions = {_text(k): json.loads(v)["features"] for k, v in (models or {}).items()}
            self.plan.cache_clear()
            self.authorize.cache_clear()
        self.freshness = self._vouch(Freshness.from_hash(materializer))
        self.deploy_checks = {_text(k): json.loads(v) for k, v in (checks or {}).items()}
        self._refreshed = time.monotonic()

    def _vouch(self, freshness: Freshness) -> Freshness:
        """Views whose marks went back since this process last looked: the store was restored from an
        older state, or a lagging replica took over. Their values are `unverified` until what was
        rolled back is written again: a sync finished after the rolled-back sync mark or write
        (`synced_at`), the stream consumer caught up after its rolled-back writes (`streamed_at`). A process started
        after the restore cannot tell: `featurehouse freshness` and the next sync compare with the
        warehouse's sync log."""
        marks = {"synced_at": freshness.synced_at, "writing_at": freshness.writing_at,
                 "streamed_at": freshness.streamed_at}
        for kind, current in marks.items():
            high = self._marks_high.setdefault(kind, {})
            for view, seen in list(high.items()):
                if mark_behind(current.get(view), seen):  # rolled back: wait for this to be written again
                    needs = self._rolled_back.setdefault(view, {})
                    recovered_by = _RECOVERED_BY[kind]
                    needs[recovered_by] = max(seen, needs.get(recovered_by, seen))
                    high[view] = current.get(view, 0.0)
            for view, mark in current.items():
                high[view] = max(mark, high.get(view, mark))
        unverified = set()
        for view, needs in list(self._rolled_back.items()):
            if all(_made_good(freshness, kind, view, threshold) for kind, threshold in needs.items()):
                del self._rolled_back[view]
            else:
                unverified.add(view)
        freshness.unverified = frozenset(unverified)
        return freshness

    def _refresh_commands(self, pipe) -> None:
        pipe.hgetall(ACTIVE_VERSIONS)
        pipe.hgetall(LAYOUTS)
        pipe.hgetall(MATERIALIZER)
        pipe.hgetall(MODEL_VERSIONS)
        pipe.hgetall(DEPLOY_CHECKS)
        pipe.get(AUDIT_KEY)

    def _judge(self, vectors: list[FeatureVector], model: str | None) -> list[FeatureVector]:
        """Vectors served for a model carry its guardrails: values not ok, and a failed deploy check."""
        if model:
            check = self.deploy_checks.get(model) if "@" in model else None
            for vector in vectors:
                mark_guardrails(vector, model, check, registered="@" in model and model in self.model_versions)
        return vectors

    def _prepare(self, entity_type: str, ids: Sequence[str], names, model,
                 principal: str | None = None) -> tuple[ReadPlan, list[str]]:
        """The plan and the Redis key of each id; raises on a request a user can fix, and AccessDenied for a
        feature `principal` may not read (None: the caller decided access itself)."""
        from featurehouse.serving.vectors import BadRequest

        if not ids:
            raise BadRequest("no entity ids given")
        if len(ids) > self.max_ids:
            raise BadRequest(f"too many ids: {len(ids)} (at most {self.max_ids})")
        plan = self.plan(entity_type, tuple(names) if names else None, model)
        purposes = None
        if principal is not None and self.policy.enforced:
            try:
                purposes = self.authorize(principal, plan, model, utc_today())
            except AccessDenied as e:
                if self.audit is not None:
                    self.audit.note_denied(e.decision, entity_type)
                raise
        parsed = parse_ids(self.registry, entity_type, ids, self.integer_keys(entity_type))  # 422: a key of no entity
        if principal is not None and self.audit is not None:
            self.audit.note_reads(principal, [p.view for p in plan.views], entity_type, parsed, model, purposes)
        return plan, [redis_key(plan, key) for key in parsed]

    def _vectors(self, plan: ReadPlan, ids: Sequence[str], replies, model: str | None,
                 behind: Sequence[float] | None = None) -> list[FeatureVector]:
        return self._judge(assemble_many(plan, [str(i) for i in ids], replies, now_micros(), self.freshness, behind),
                           model)


class OnlineReader(_Cached):
    """In-process reads for models that run in Python (no HTTP)."""

    def __init__(self, registry: Registry, client, **kwargs):
        super().__init__(registry, **kwargs)
        self.client = client
        self.cluster = is_cluster(client)

    def get(self, entity_type: str, ids: Sequence[str], names: Sequence[str] | None = None,
            model: str | None = None, principal: str | None = None) -> list[FeatureVector]:
        if self._due():
            pipe = self.client.pipeline(transaction=False)
            self._refresh_commands(pipe)
            self._apply(*pipe.execute())
        plan, keys = self._prepare(entity_type, ids, names, model, principal)
        near = self.near_cache
        if near is None:
            replies, behind = self._read(plan, keys)
            return self._vectors(plan, ids, replies, model, behind)
        replies, missing, behind = near.lookup_aged(plan, keys)
        if missing:
            fetched_at = near.clock()
            got, got_behind = self._read(plan, [keys[i] for i in missing])
            near.fill(plan, keys, replies, missing, got, fetched_at, got_behind)
            for i, lag in zip(missing, got_behind or ()):
                behind[i] = lag
        return self._vectors(plan, ids, replies, model, behind)

    def _read(self, plan: ReadPlan, keys: list[str]) -> tuple[list, list[float] | None]:
        """The replies, and per reply how far behind the primary it may be (None: every one from the primary)."""
        if self.replicas is None:
            return self._fetch(plan, keys), None
        fields = plan.fields
        return self.replicas.read_sync(keys, lambda key: ("HMGET", key, *fields),
                                       lambda rest: self._fetch(plan, rest))

    def _fetch(self, plan: ReadPlan, keys: list[str]) -> list:
        if len(keys) == 1:
            if self.cluster:
                return [on_node(self.client, keys[0], ("HMGET", keys[0], *plan.fields))]
            return [self.client.hmget(keys[0], plan.fields)]
        if not self.cluster:
            try:
                return self.client.fcall_ro("fh_hmget_many", len(keys), *keys, *plan.fields)
            except redis.ResponseError as e:  # a server featurehouse never wrote to: load the library
                if "function" not in str(e).lower():
                    raise
                self.client.function_load(FUNCTIONS, replace=True)
                return self.client.fcall_ro("fh_hmget_many", len(keys), *keys, *plan.fields)
        return per_node(self.client, [(key, ("HMGET", key, *plan.fields)) for key in keys])


class AsyncOnlineReader(_Cached):
    """The same reads on redis.asyncio, for the HTTP app's event loop."""

    def __init__(self, registry: Registry, client, **kwargs):
        super().__init__(registry, **kwargs)
        self.client = client
        self.cluster = is_cluster(client)

    async def refresh_if_due(self) -> None:
        """Active versions, layouts and the materializer marks, read again at most once per refresh_s."""
        if self._due():
            async with self.client.pipeline(transaction=False) as pipe:
                self._refresh_commands(pipe)
                self._apply(*(await pipe.execute()))

    async def get(self, entity_type: str, ids: Sequence[str], names: Sequence[str] | None = None,
                  model: str | None = None, principal: str | None = None) -> list[FeatureVector]:
        if self._due():  # checked here first: no coroutine on the hot path unless a refresh is due
            await self.refresh_if_due()
        plan, keys = self._prepare(entity_type, ids, names, model, principal)
        near = self.near_cache
        if near is None:
            if self.replicas is None:  # the common case: one coroutine to Redis, as before replica reads existed
                return self._vectors(plan, ids, await self._fetch(plan, keys), model)
            replies, behind = await self._read(plan, keys)
            return self._vectors(plan, ids, replies, model, behind)
        replies, missing, behind = near.lookup_aged(plan, keys)
        if missing:
            fetched_at = near.clock()
            got, got_behind = await self._read(plan, [keys[i] for i in missing])
            near.fill(plan, keys, replies, missing, got, fetched_at, got_behind)
            for i, lag in zip(missing, got_behind or ()):
                behind[i] = lag
        return self._vectors(plan, ids, replies, model, behind)

    async def _read(self, plan: ReadPlan, keys: list[str]) -> tuple[list, list[float] | None]:
        if self.replicas is None:
            return await self._fetch(plan, keys), None
        fields = plan.fields

        async def from_primaries(rest: list[str]) -> list:
            return await self._fetch(plan, rest)

        return await self.replicas.read_async(self.client, keys, lambda key: ("HMGET", key, *fields), from_primaries)

    async def _fetch(self, plan: ReadPlan, keys: list[str]) -> list:
        if len(keys) == 1:
            return [await self.client.hmget(keys[0], plan.fields)]
        if not self.cluster:
            try:
                return await self.client.fcall_ro("fh_hmget_many", len(keys), *keys, *plan.fields)
            except redis.ResponseError as e:
                if "function" not in str(e).lower():
                    raise
                await self.client.function_load(FUNCTIONS, replace=True)
                return await self.client.fcall_ro("fh_hmget_many", len(keys), *keys, *plan.fields)
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, plan.fields)
            return await pipe.execute()
