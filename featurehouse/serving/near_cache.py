"""A per-worker near-cache for hot entities: under a skewed workload (a few merchants, a popular item)
most reads ask Redis again for a hash it answered a moment ago. The cache keeps the store's raw reply
per (entity key, fields) for a bounded age, so a hot entity costs Redis one read per age bound, not
one per request.

The bound is the contract: a cached reply is served only while it is younger than `slo_fraction` of
the freshness SLO of every view the read asks for (and never older than `max_age_s`). A view without an
SLO is never cached: nothing says how old its value may be. What is served from the cache is judged
as any read is (stale, expired, age from the value's own event time, at serve time), so metadata stays
honest; what the cache can hide, for at most the bound, is a change made since: a newer write, or a
deletion (`forget` clears the cache of the process that forgets; a `featurehouse serve` worker keeps
serving what it holds of a forgotten entity for at most the bound, which is why the bound is capped
at MAX_AGE_CAP_S).

Not Redis client-side caching (RESP3 tracking with invalidation): redis-py offers it only on its sync
client, and serving reads through redis.asyncio; one bound on both paths is simpler to state.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from featurehouse.errors import FeaturehouseError
from featurehouse.serving.vectors import ReadPlan
from featurehouse.settings import dataclass_setting


class NearCacheSettingError(FeaturehouseError):
    """The `near_cache` setting of `featurehouse serve` is not one it understands."""


MAX_AGE_CAP_S = 60.0  # no reply is served from a near-cache longer than this, whatever the settings


@dataclass(frozen=True)
class NearCacheConfig:
    entries: int = 10_000  # most replies kept per worker (least recently used go first)
    slo_fraction: float = 0.1  # a reply is served while younger than this share of its views' smallest SLO
    max_age_s: float = 1.0  # and never older than this

    def __post_init__(self) -> None:
        if isinstance(self.entries, bool) or not isinstance(self.entries, int) or self.entries < 1:
            raise ValueError(f"entries must be a whole number, 1 or more, got {self.entries!r}")
        if not 0.0 < self.slo_fraction <= 1.0:
            raise ValueError(f"slo_fraction must be in (0, 1], got {self.slo_fraction}")
        if not 0.0 < self.max_age_s <= MAX_AGE_CAP_S:
            raise ValueError(f"max_age_s must be more than 0 and at most {MAX_AGE_CAP_S:g} (a cached value hides "
                             f"writes and deletions for that long), got {self.max_age_s}")


def near_cache_config(value: Any) -> NearCacheConfig | None:
    """The `near_cache` setting (serve's YAML, or FEATUREHOUSE_NEAR_CACHE as JSON): off (absent, false),
    on with the defaults (true), or a mapping of entries / slo_fraction / max_age_s."""
    return dataclass_setting("near_cache", value, NearCacheConfig, NearCacheSettingError, '{"max_age_s": 0.5}')


def near_cache_setting(config: NearCacheConfig | None) -> str:
    """The setting as FEATUREHOUSE_NEAR_CACHE carries it to serve's workers."""
    return "false" if config is None else json.dumps(dataclasses.asdict(config))


class NearCache:
    """An LRU of raw replies with their fetch time; `clock` is injectable for tests. Thread-safe: an SDK
    store may be read from a threaded web server's threads."""

    def __init__(self, config: NearCacheConfig, clock: Callable[[], float] = time.monotonic):
        self.config, self.clock = config, clock
        self._lock = threading.Lock()
        self._replies: OrderedDict[tuple[str, tuple[str, ...]], tuple[float, Any]] = OrderedDict()
        self.hits = self.misses = 0
        self.ages: list[float] = []  # ages of replies served from the cache since the last drain (metrics)

    def __repr__(self) -> str:
        return (f"NearCache({len(self._replies)} of {self.config.entries} replies held, hits={self.hits}, "
                f"misses={self.misses}, at most {self.config.max_age_s:g} s or {self.config.slo_fraction:g} of an SLO)")

    def bound(self, plan: ReadPlan) -> float:
        """Seconds a reply for `plan` may be served from the cache; 0 when a view has no SLO."""
        smallest = None
        for planned in plan.views:
            slo = planned.view.freshness_slo
            if slo is None:
                return 0.0
            seconds = slo.total_seconds()
            smallest = seconds if smallest is None else min(smallest, seconds)
        return 0.0 if smallest is None else min(self.config.max_age_s, self.config.slo_fraction * smallest)

    def lookup(self, plan: ReadPlan, keys: Sequence[str]) -> tuple[list[Any], list[int]]:
        """(replies with None where missed, the indexes of the keys to read from the store)."""
        replies, missing, _ = self.lookup_aged(plan, keys)
        return replies, missing

    def lookup_aged(self, plan: ReadPlan, keys: Sequence[str]) -> tuple[list[Any], list[int], list[float]]:
        """`lookup`, and per key the age of the reply served (0.0 for a miss): how far behind the store it may be."""
        bound = self.bound(plan)
        replies: list[Any] = [None] * len(keys)
        ages = [0.0] * len(keys)
        if bound <= 0:
            self.misses += len(keys)
            return replies, list(range(len(keys))), ages
        now = self.clock()
        missing = []
        with self._lock:
            for i, key in enumerate(keys):
                held = self._replies.get((key, plan.fields))
                if held is not None and now - held[0] < bound:
                    self._replies.move_to_end((key, plan.fields))
                    replies[i] = held[1]
                    ages[i] = now - held[0]
                    self.ages.append(ages[i])
                else:
                    missing.append(i)
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
            if len(self.ages) > 100_000:
                del self.ages[:50_000]
        return replies, missing, ages

    def store(self, plan: ReadPlan, keys: Sequence[str], replies: Sequence[Any], fetched_at: float) -> None:
        """Keep replies read at `fetched_at` (the clock read before the store was asked: the age counts the
        round trip too)."""
        if self.bound(plan) <= 0:
            return
        with self._lock:
            for key, reply in zip(keys, replies):
                held = self._replies.get((key, plan.fields))
                if held is not None and held[0] > fetched_at:
                    continue  # a read that began later already answered: a value never goes back
                self._replies[(key, plan.fields)] = (fetched_at, reply)
                self._replies.move_to_end((key, plan.fields))
            while len(self._replies) > self.config.entries:
                self._replies.popitem(last=False)

    def fill(self, plan: ReadPlan, keys: Sequence[str], replies: list[Any], missing: Sequence[int],
             got: Sequence[Any], fetched_at: float, behind: Sequence[float] | None = None) -> list[Any]:
        """`lookup`'s replies completed with the store's answers for the `missing` indexes, which are kept.
        `behind` (per answer): how far behind the primary a replica's answer may be; it is kept as that much
        older, so the cache's bound covers the replica's lag too."""
        for i, reply in zip(missing, got):
            replies[i] = reply
        if behind is None or not any(behind):
            self.store(plan, [keys[i] for i in missing], got, fetched_at)
        else:
            for i, reply, lag in zip(missing, got, behind):
                self.store(plan, [keys[i]], [reply], fetched_at - lag)
        return replies

    def clear(self) -> None:
        """Forget every reply (an entity was deleted: nothing held of it may be served again)."""
        with self._lock:
            self._replies.clear()

    def drain_ages(self) -> list[float]:
        with self._lock:
            ages, self.ages = self.ages, []
        return ages
