"""Feature vectors with freshness: what serving returns, in-process or over HTTP.

A request (entity type, ids, feature names or a model) becomes a `ReadPlan` once: which hash fields
to fetch for each entity. The replies of one HMGET per entity become `FeatureVector`s: each value
with its event time, age, version and status, judged against the view's freshness SLO and TTL and
against its materializer's lag. The I/O (sync redis-py, or redis.asyncio in the HTTP app) is the
caller's; this module only plans and judges, so both paths agree exactly.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from featurehouse.clock import utc_now as utcnow  # noqa: F401 - the clock serving judges by
from featurehouse.errors import InvalidRequest, UnknownEntity, UnknownFeature
from featurehouse.online.codec import decode_values, from_micros, to_micros
from featurehouse.online.keys import entity_key, time_field, value_field
from featurehouse.online.layout import Layout
from featurehouse.registry.model import FeatureRef, FeatureView, Registry, parse_entity_key

MAX_NAMES = 500


BadRequest = InvalidRequest  # a request a user can fix: malformed names, a feature of another entity type


@dataclass(slots=True)
class FeatureValue:
    value: Any
    event_time: datetime | None
    age_seconds: float | None
    stale: bool
    version: int
    status: str  # ok | stale | expired (past the view's TTL: value withheld) | missing (never written)


@dataclass(slots=True)
class FeatureVector:
    entity_type: str
    entity_id: str
    features: dict[str, FeatureValue]
    stale: bool
    served_at: datetime
    guardrails: dict | None = None  # for vectors served by model: {"ok": bool, "violations": [...]}
    # at most how many seconds the values read may be behind the online store's primary: 0 for a read of the
    # primary; a replica's proven lag (replica_reads); a near-cache reply's age (near_cache), plus its replica's
    behind_s: float = 0.0


def mark_guardrails(vector: FeatureVector, model: str, check: dict | None, registered: bool) -> None:
    """A model's vector breaks its guardrails when a value is not ok (stale, expired, missing) or when the
    model version's last deploy check failed (or it was registered but never checked)."""
    violations = [f"{name}: {value.status}" for name, value in vector.features.items() if value.status != "ok"]
    if "@" in model and not registered and check is None:  # a version asked for that no deploy check covers
        violations.append(f"{model} is not a registered model version (`featurehouse model register`), so no "
                          "deploy check covers it")
    elif registered and check is None:
        violations.append(f"{model} has not passed `featurehouse deploy-check` yet")
    elif check is not None and not check.get("ok"):
        first = (check.get("failures") or ["?"])[0]
        violations.append(f"{model} failed its deploy check: {first}")
    vector.guardrails = {"ok": not violations, "violations": violations}


@dataclass(frozen=True)
class PlannedView:
    view: FeatureView
    columns: tuple[tuple[str, int | None], ...]  # (requested name, index in the stored array, None: not stored)

    @property
    def slo_s(self) -> float | None:
        return self.view.freshness_slo.total_seconds() if self.view.freshness_slo else None

    @property
    def ttl_s(self) -> float | None:
        return self.view.ttl.total_seconds() if self.view.ttl else None


@dataclass(frozen=True)
class ReadPlan:
    entity_type: str
    views: tuple[PlannedView, ...]
    fields: tuple[str, ...]  # HMGET fields: value and time field of each view, in order
    names: tuple[str, ...]  # requested names, in request order


@dataclass
class Freshness:
    """Materializer state per view@version, refreshed by the caller: the stream consumer's lag in
    seconds, and when the batch sync last succeeded (epoch seconds)."""

    stream_lag_s: dict[str, float] = field(default_factory=dict)
    stream_checked_at: dict[str, float] = field(default_factory=dict)
    synced_at: dict[str, float] = field(default_factory=dict)
    streamed_at: dict[str, float] = field(default_factory=dict)  # when the consumer last applied pushed rows
    writing_at: dict[str, float] = field(default_factory=dict)  # when the last sync started writing
    newest_event: dict[str, float] = field(default_factory=dict)  # the newest event time sync or stream has written
    # views whose sync or stream mark went back (the store was restored from an older state or lost writes):
    # their values are served `unverified` until a sync repairs them
    unverified: frozenset[str] = frozenset()

    @classmethod
    def from_hash(cls, materializer: dict) -> "Freshness":
        """Parse the online store's `fh:materializer` hash (`<view>@<N>:<what>` -> seconds)."""
        state: dict[str, dict[str, float]] = {"stream_lag_s": {}, "stream_checked_at": {}, "synced_at": {},
                                              "streamed_at": {}, "writing_at": {}, "newest_event": {}}
        for k, v in materializer.items():
            k = k.decode() if isinstance(k, bytes) else k
            view, _, what = k.rpartition(":")
            if what in state:
                state[what][view] = float(v)
        return cls(state["stream_lag_s"], state["stream_checked_at"], state["synced_at"], state["streamed_at"],
                   state["writing_at"], state["newest_event"])

    def materialized(self, view: str) -> bool:
        return view in self.stream_checked_at or view in self.synced_at

    def stream_lag(self, view: str, now_s: float) -> float | None:
        """The stream consumer's lag as it last saw it, plus the time since it looked (None: no consumer ran)."""
        checked = self.stream_checked_at.get(view)
        return None if checked is None else (self.stream_lag_s.get(view) or 0.0) + max(0.0, now_s - checked)

    def lag(self, view: str, now_s: float) -> float:
        """How far the view's materializers are behind (at epoch second `now_s`).

        The stream's lag as its consumer last saw it, plus the time since it last looked (a stopped
        consumer reports nothing, so its silence is lag too); and the time since the last good sync.
        """
        lag = self.stream_lag(view, now_s) or 0.0
        synced = self.synced_at.get(view)
        if synced is not None:
            lag = max(lag, now_s - synced)
        return lag


def plan_request(registry: Registry, entity_type: str, names: Sequence[str] | None = None,
                 model: str | None = None, active: dict[str, int] | None = None,
                 model_versions: dict[str, list[str]] | None = None,
                 layouts: dict[str, Layout] | None = None) -> ReadPlan:
    """Resolve names (or a model's features of this entity type) to views, versions and fields.

    `model=NAME@VERSION` of a registered model version serves exactly the feature versions it was
    trained on; `model=NAME` serves the exposure's features at their active versions. `active` and
    `layouts` are the online store's own: which version is active, and where each column sits in a
    stored array (a column the store holds no layout for is served as missing)."""
    if entity_type not in registry.entities:
        raise UnknownEntity(f"unknown entity type '{entity_type}' (declared: {', '.join(sorted(registry.entities))})")
    if model:
        name, _, version = model.partition("@")
        known = model_versions or {}
        registered = sorted(k for k in known if k.startswith(name + "@"))
        if version and model in known:
            features = known[model]
        else:
            if version and (registered or version != "1"):
                raise UnknownFeature(f"model '{name}' has no registered version {version} "
                                     f"(registered: {', '.join(registered) or 'none'})")
            features = list(registry.model(name).features)
        names = [n for n in features if registry.resolve(n)[0].entity.name == entity_type]
        if not names:
            raise BadRequest(f"model '{name}' uses no features of entity type '{entity_type}'")
    if not names:
        raise BadRequest("give names=view.column,... or model=NAME")
    if len(names) > MAX_NAMES:
        raise BadRequest(f"too many feature names: {len(names)} (at most {MAX_NAMES})")
    grouped: dict[tuple[str, int], list[tuple[str, int | None]]] = {}
    views: dict[tuple[str, int], FeatureView] = {}
    for text in names:
        ref = FeatureRef.parse(text)
        version = ref.version if ref.version is not None else (active or {}).get(ref.view)
        view, feature = registry.resolve(FeatureRef(ref.view, ref.column, version))
        if view.entity.name != entity_type:
            raise BadRequest(f"feature '{text}' belongs to entity type '{view.entity.name}', not '{entity_type}'")
        key = (view.name, view.version)
        views[key] = view
        layout = (layouts or {}).get(value_field(view.name, view.version))
        grouped.setdefault(key, []).append((text, None if layout is None else layout.index(feature.column)))
    planned = tuple(PlannedView(views[k], tuple(cols)) for k, cols in grouped.items())
    fields = tuple(f for p in planned for f in (value_field(p.view.name, p.view.version),
                                                 time_field(p.view.name, p.view.version)))
    return ReadPlan(entity_type, planned, fields, tuple(names))


# -- entity keys -------------------------------------------------------------------------------
#
# An id is text (`42`, `card_id=1;merchant_id=7`); the online store keys an entity by its key values as
# text. A key column that the entity's views type as an integer is checked: an id that is not an integer
# written plainly (as featurehouse.types.canonical_integer spells it, and the warehouse writes it), or is
# outside the column's range, names no entity the store can hold, and is refused (InvalidRequest: HTTP
# 422) naming the column, its type and the value, where it was served as `missing` before. As for pushed
# keys (stream/rows.py), `042` and `+42` are refused with the plain spelling to use. A key column whose
# views type it differently (or leave it untyped) is not judged.
#
# Whether a declared type is an integer is featurehouse.types' call (`logical`). A serving worker does not
# import that module (it loads pyarrow and sqlglot: tests/test_serving.py), so its answers for the common
# spellings, and its canonical_integer, are repeated here, held equal to it by tests/test_adoption_fixes.py;
# any other spelling is asked of featurehouse.types itself.

# lowercased spelling -> (bits, signed): what featurehouse.types.logical reads as an integer (family INTEGER)
_INTEGER_SPELLINGS: dict[str, tuple[int, bool]] = {
    "bigint": (64, True), "int8": (64, True), "int64": (64, True), "long": (64, True),
    "integer": (32, True), "int": (32, True), "int4": (32, True), "int32": (32, True),
    "smallint": (16, True), "int2": (16, True), "int16": (16, True), "tinyint": (8, True), "int1": (8, True),
    "ubigint": (64, False), "uinteger": (32, False), "usmallint": (16, False), "utinyint": (8, False),
    "hugeint": (128, True), "uhugeint": (128, False),
}
# lowercased spellings that logical reads as another family: the common text key types (with a length or not)
_TEXT_SPELLINGS = frozenset({"varchar", "text", "string", "character varying", "char", "character", "uuid"})
_PLAIN_INTEGER = re.compile(r"-?[1-9][0-9]*|0")
_INTEGER_TEXT = re.compile(r"\s*([+-]?)0*([0-9]+)\s*")


def plain_integer(text: str) -> str | None:
    """featurehouse.types.canonical_integer: `+007` -> `7`, `-0` -> `0`, None when not an integer."""
    found = _INTEGER_TEXT.fullmatch(text)
    if found is None:
        return None
    sign, digits = found.groups()
    return digits if digits == "0" or sign != "-" else f"-{digits}"


def integer_type(data_type: str | None) -> tuple[int, bool] | None:
    """(bits, signed) of an integer type as featurehouse.types.logical reads it; None for another type or none."""
    if not data_type:
        return None
    text = " ".join(data_type.strip().lower().split())
    if text in _INTEGER_SPELLINGS:
        return _INTEGER_SPELLINGS[text]
    if text.partition("(")[0].strip() in _TEXT_SPELLINGS:
        return None
    from featurehouse.types import Family, logical  # an unusual spelling: ask the judge (pyarrow, sqlglot)

    declared = logical(data_type)
    return (declared.bits or 128, declared.signed) if declared.family is Family.INTEGER else None


def _integer_range(bits: int, signed: bool) -> tuple[int, int]:
    """The integers a key of this type can be: its own width within BIGINT's (HUGEINT is served as BIGINT)."""
    if not signed:
        return 0, min(2**bits, 2**63) - 1
    bits = min(bits, 64)
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


@dataclass(frozen=True)
class IntegerKey:
    """A key column that every view of the entity types as an integer: its declared type (the widest
    view's) and the keys it can hold (any view's)."""

    column: str
    data_type: str
    low: int
    high: int

    def problem(self, text: str) -> str | None:
        """Why `text` is no key of this column, or None when it can be one."""
        if not _PLAIN_INTEGER.fullmatch(text):
            plain = plain_integer(text)
            shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
            return f"{shown} is not an integer" if plain is None else f"{shown} is not written plainly (write {plain})"
        if len(text) > 20 or not self.low <= int(text) <= self.high:  # int() of 4,300+ digits raises
            return f"{text if len(text) <= 40 else text[:37] + '...'} is outside the range of {self.data_type}"
        return None


def integer_keys(registry: Registry, entity_type: str) -> dict[str, IntegerKey]:
    """The entity's key columns that all its views (every version) type as an integer, by column."""
    entity = registry.entities[entity_type]
    views = [v for v in registry.views.values() if v.entity.name == entity_type]
    found: dict[str, IntegerKey] = {}
    for i, column in enumerate(entity.keys):
        declared = [v.key_types[i] if i < len(v.key_types) else None for v in views]
        ranges = []
        for data_type in declared:
            width = integer_type(data_type)
            if data_type is None or width is None:
                break
            ranges.append((*_integer_range(*width), data_type))
        else:
            if ranges:
                widest = max(ranges, key=lambda r: r[1] - r[0])[2]
                found[column] = IntegerKey(column, widest, min(r[0] for r in ranges), max(r[1] for r in ranges))
    return found


def parse_ids(registry: Registry, entity_type: str, ids: Sequence[str],
              integer_columns: dict[str, IntegerKey] | None = None) -> list[tuple[str, ...]]:
    """Each id as its key values (text), or InvalidRequest for an id no entity of the type can have.
    `integer_columns`: `integer_keys(registry, entity_type)`, when the caller keeps it."""
    entity = registry.entities[entity_type]
    checks = integer_keys(registry, entity_type) if integer_columns is None else integer_columns
    parsed = [parse_entity_key(entity, str(i)) for i in ids]
    if checks:
        positions = [(j, checks[k]) for j, k in enumerate(entity.keys) if k in checks]
        for key in parsed:
            for j, check in positions:
                problem = check.problem(key[j])
                if problem is not None:
                    raise InvalidRequest(f"entity '{entity_type}': key column '{check.column}' is {check.data_type}, "
                                         f"and {problem}")
    return parsed


def redis_key(plan: ReadPlan, key: tuple) -> str:
    return entity_key(plan.entity_type, key)


def assemble(plan: ReadPlan, entity_id: str, reply: Sequence[bytes | None], now: datetime,
             freshness: Freshness | None = None) -> FeatureVector:
    """One entity's HMGET reply -> a vector judged for freshness at `now` (naive UTC)."""
    return assemble_many(plan, [entity_id], [reply], to_micros(now), freshness)[0]


def now_micros() -> int:
    return time.time_ns() // 1000


def human_duration(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def materializer_lag(view: FeatureView, state: Freshness, now_s: float) -> tuple[float | None, float | None, str | None]:
    """(the view's materializer lag, its stream consumer's part, the reason it breaches the SLO or None), from
    the online store's marks alone: what `featurehouse freshness` reports, and what a serving worker, which
    never opens the warehouse, can tell live."""
    name = view.versioned_name
    stream_lag = None
    if name in state.stream_checked_at:
        stream_lag = (state.stream_lag_s.get(name) or 0.0) + max(0.0, now_s - state.stream_checked_at[name])
    lag = state.lag(name, now_s) if state.materialized(name) else None
    slo = view.freshness_slo.total_seconds() if view.freshness_slo else None
    reason = None
    if view.online and slo is not None:
        if lag is None:
            reason = "never synced or streamed to the online store"
        elif lag > slo:
            which = "stream consumer" if stream_lag is not None and stream_lag >= lag else "sync"
            reason = f"{which} lags {human_duration(lag)} (SLO {human_duration(slo)})"
    return lag, stream_lag, reason


def value_status(age_s: float, slo_s: float | None, ttl_s: float | None, lagging: bool = False,
                 unverified: bool = False) -> str:
    """The status of a stored value of age `age_s` (docs/semantics.md, "Serving"): `expired` past the
    view's TTL (its value is withheld), `unverified` while the store holds an older state of the view
    than it held before, `stale` past its freshness SLO or while its materializer lags past it, else
    `ok`. Online serving and batch scoring both judge by this one rule."""
    if ttl_s is not None and age_s > ttl_s:
        return "expired"
    if unverified:
        return "unverified"
    if lagging or (slo_s is not None and age_s > slo_s):
        return "stale"
    return "ok"


def assemble_many(plan: ReadPlan, entity_ids: Sequence[str], replies: Sequence[Sequence[bytes | None]],
                  now_us: int, freshness: Freshness | None = None,
                  behind: Sequence[float] | None = None) -> list[FeatureVector]:
    """Each entity's HMGET reply -> its vector, judged for freshness at `now_us` (epoch microseconds);
    `behind`: per reply, how far behind the primary it may be (FeatureVector.behind_s).

    On the hot path of every request: what depends only on the view (SLO, TTL, materializer lag) is
    worked out once per request; per entity, ages are integer microseconds and one datetime per view.
    """
    now = from_micros(now_us)
    judged = []
    for p in plan.views:
        slo = p.slo_s
        lagging = slo is not None and freshness is not None and freshness.lag(p.view.versioned_name, now_us / 1e6) > slo
        unverified = freshness is not None and p.view.versioned_name in freshness.unverified
        judged.append((p.columns, p.view.version, slo, p.ttl_s, lagging, unverified))
    names = plan.names
    vectors = []
    for entity_id, reply in zip(entity_ids, replies):
        out: dict[str, FeatureValue] = {}
        stale_any = False
        for i, (columns, version, slo, ttl, lagging, unverified) in enumerate(judged):
            payload, times = reply[2 * i], reply[2 * i + 1]
            if payload is None or times is None:
                for name, _ in columns:
                    out[name] = FeatureValue(None, None, None, False, version, "missing")
                continue
            et_us = int(times[: times.index(b":")])
            age = (now_us - et_us) / 1e6
            event_time = from_micros(et_us)
            status = value_status(age, slo, ttl, lagging, unverified)
            if status == "expired":
                stale_any = True
                for name, _ in columns:
                    out[name] = FeatureValue(None, event_time, age, True, version, "expired")
                continue
            stale = status != "ok"  # stale or unverified: not a value to act on without a look
            stale_any = stale_any or stale
            values = decode_values(payload)
            for name, index in columns:
                if index is None:
                    out[name] = FeatureValue(None, None, None, False, version, "missing")
                else:
                    out[name] = FeatureValue(values[index], event_time, age, stale, version, status)
        vectors.append(FeatureVector(plan.entity_type, entity_id,
                                     out if len(judged) == 1 else {n: out[n] for n in names}, stale_any, now))
    if behind is not None:
        for vector, lag in zip(vectors, behind):
            vector.behind_s = lag
    return vectors


def json_default(value: Any) -> Any:
    if type(value).__name__ == "Decimal":
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot render {type(value).__name__} as JSON")
