"""What the guards and materializers last observed, as the catalog shows it: model versions with their
training sets and deploy-check verdicts, each view's last parity check, its lag over time, and what
serving counted. Read from the online store's hashes (both the live catalog and the export read the same
ones), so a page shows what serving by `?model=NAME@VERSION` judges by."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, NamedTuple

from featurehouse.online.history import (
    LagSample,
    ParityResult,
    parse_guard_results,
    parse_lag_history,
    profile_summary,
    without_values,
)
from featurehouse.online.keys import (
    ACTIVE_VERSIONS,
    DEPLOY_CHECKS,
    GUARD_RESULTS,
    LAG_HISTORY,
    MODEL_RECORDS,
    MODEL_VERSIONS,
)

# the hashes a page reads, in this order (one pipeline)
HASHES = (MODEL_VERSIONS, MODEL_RECORDS, DEPLOY_CHECKS, GUARD_RESULTS, LAG_HISTORY, ACTIVE_VERSIONS)


class GateResult(NamedTuple):  # a tuple: a catalog of many model versions holds thousands
    gate: str  # schema | freshness | parity | skew | drift
    subject: str  # a feature (view.column@N), a view (view@N) or a phrase
    status: str  # pass | fail | skipped
    detail: str

    def about(self, view: str, version: int) -> bool:
        """Whether the gate judged view@version or one of its features."""
        subject = self.subject
        return subject == f"{view}@{version}" or (subject.startswith(f"{view}.") and subject.endswith(f"@{version}"))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked_at: float
    failures: tuple[str, ...]
    gates: tuple[GateResult, ...]


@dataclass(frozen=True)
class TrainingSetSummary:
    training_set_id: str
    created_at: str
    name: str | None
    spine_fingerprint: str
    row_count: int
    entity_timestamp: str
    engine: str
    schemas: dict[str, str]  # view.column@N -> type
    transforms: dict[str, str]  # view@N -> dbt unique_id@checksum
    profile: dict[str, dict]  # view.column@N -> aggregates of its profile (online/history.py profile_summary)


@dataclass(frozen=True)
class ModelVersionEntry:
    model: str
    version: str
    features: tuple[str, ...]  # view.column@N, as trained
    training_set_id: str
    registered_at: str = ""
    source: str = ""
    training_set: TrainingSetSummary | None = None
    verdict: Verdict | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    @cached_property
    def views(self) -> dict[str, int]:
        """view -> the version the model was trained on."""
        out: dict[str, int] = {}
        for feature in self.features:
            base, _, version = feature.rpartition("@")
            out[base.partition(".")[0]] = int(version)
        return out

    @property
    def status(self) -> str:
        """passed | failed | unchecked (no deploy check yet)."""
        return "unchecked" if self.verdict is None else "passed" if self.verdict.ok else "failed"


@dataclass
class Observed:
    models: dict[str, ModelVersionEntry] = field(default_factory=dict)  # name@version ->
    parity: dict[str, ParityResult] = field(default_factory=dict)  # view@N ->
    lag: Mapping[str, list[LagSample]] = field(default_factory=dict)  # view@N -> oldest first
    active: dict[str, int] = field(default_factory=dict)  # view -> the version serving reads (promoted)
    served: dict[str, float] = field(default_factory=dict)  # view -> values served
    nulls: dict[str, float] = field(default_factory=dict)  # view.column -> null values served
    served_source: str = ""  # where the counts come from ("" : none known)
    problem: str = ""  # why the observations could not be read ("": they were)
    _using: dict[str, list[ModelVersionEntry]] | None = field(default=None, repr=False, compare=False)

    def models_using(self, view: str) -> list[ModelVersionEntry]:
        """The model versions trained on the view (any of its versions), by name@version."""
        if self._using is None:  # built once: the health page asks for every view
            using: dict[str, list[ModelVersionEntry]] = {}
            for _, m in sorted(self.models.items()):
                for name in m.views:
                    using.setdefault(name, []).append(m)
            self._using = using
        return self._using.get(view, [])

    def gates_about(self, view: str, version: int) -> list[tuple[ModelVersionEntry, GateResult]]:
        """The deploy-check gates that judged view@version or its features, model by model."""
        return [(m, g) for m in self.models_using(view) if m.verdict for g in m.verdict.gates
                if g.about(view, version) and g.gate != "freshness"]


def observed_from_hashes(replies: list[Mapping]) -> Observed:
    """The catalog's observations from HGETALL of each of HASHES (bytes or text), in that order."""
    versions, records, checks, guards, lag, active = (replies + [{}] * len(HASHES))[:len(HASHES)]
    gates = _deploy_gates(guards or {})
    models = {}
    for key, value in (versions or {}).items():
        ref = _text(key)
        model, _, version = ref.partition("@")
        try:
            bound = json.loads(value)
            record = json.loads((records or {}).get(key) or (records or {}).get(ref) or "{}")
        except ValueError:
            continue
        models[ref] = ModelVersionEntry(model, version, tuple(bound.get("features", ())), bound.get("training_set", ""),
                                        record.get("registered_at", ""), record.get("source", ""),
                                        _summary(bound.get("training_set", ""), record.get("training_set_record")),
                                        _verdict((checks or {}).get(key) or (checks or {}).get(ref), gates.get(ref, ())))
    return Observed(models, parse_guard_results(guards or {}), parse_lag_history(lag or {}),
                    {_text(k): int(v) for k, v in (active or {}).items()})


def read_observed(client: Any) -> Observed:
    """The observations from a (sync) Redis client: the export's reading."""
    pipe = client.pipeline(transaction=False)
    for key in HASHES:
        pipe.hgetall(key)
    return observed_from_hashes(pipe.execute())


def with_training_sets(observed: Observed, records: Mapping[str, Any]) -> Observed:
    """Model versions registered before their training set's summary was kept online, completed from the
    warehouse's records (`LineageLog.training_set`, by id): what the export, which opens the warehouse, adds."""
    from dataclasses import replace

    for ref, entry in list(observed.models.items()):
        record = records.get(entry.training_set_id)
        if entry.training_set is None and record is not None:
            observed.models[ref] = replace(entry, training_set=TrainingSetSummary(
                record.training_set_id, record.created_at.isoformat(), record.name, record.spine_fingerprint,
                record.row_count, record.entity_timestamp, record.engine, record.schemas, record.transforms,
                {f: profile_summary(p) for f, p in record.profile.items()}))
    observed._using = None  # the entries changed
    return observed


def _summary(ident: str, raw: Any) -> TrainingSetSummary | None:
    if not isinstance(raw, dict):
        return None
    return TrainingSetSummary(ident, str(raw.get("created_at", "")), raw.get("name"), str(raw.get("spine_fingerprint", "")),
                              int(raw.get("row_count") or 0), str(raw.get("entity_timestamp", "")),
                              str(raw.get("engine", "")), dict(raw.get("schemas") or {}),
                              dict(raw.get("transforms") or {}), dict(raw.get("profile") or {}))


def _verdict(raw: Any, gates: tuple[GateResult, ...]) -> Verdict | None:
    """The deploy check serving judges by, with its gates when they were kept (a check older than them has
    only its failures); a failure's example values are left out (every reader of the catalog sees it)."""
    if not raw:
        return None
    try:
        check = json.loads(raw)
        return Verdict(bool(check["ok"]), float(check.get("checked_at") or 0.0),
                       tuple(without_values(str(f)) for f in check.get("failures", ())), gates)
    except (ValueError, KeyError, TypeError):
        return None


def _deploy_gates(raw: Mapping) -> dict[str, tuple[GateResult, ...]]:
    """`deploy:<name@version>` fields of fh:guard_results: each model version's gates."""
    out: dict[str, tuple[GateResult, ...]] = {}
    for key, value in raw.items():
        kind, _, ref = _text(key).partition(":")
        if kind != "deploy":
            continue
        try:
            out[ref] = tuple(GateResult(str(g[0]), str(g[1]), str(g[2]), without_values(str(g[3])))
                             for g in json.loads(value).get("gates", ()) if len(g) >= 4)
        except (ValueError, TypeError, AttributeError):
            continue
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
