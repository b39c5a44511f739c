"""The model deploy check: every guardrail, for exactly the features a model version was trained on.

Gates, in order: schema (each feature exists at its trained version with its trained type, and the
view's published schema is intact), freshness (each view within its SLO), parity (online equals the
warehouse), skew (served values equal point-in-time values) and drift (served distributions near the
training set's). Skew and drift need served vectors of those features; without any they are skipped,
not passed silently. The verdict is kept in the online store so that serving by `?model=NAME@VERSION`
can mark vectors of a model version that failed it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime

from featurehouse.catalog import Catalog
from featurehouse.guard.drift import MIN_SERVED, measure_drift
from featurehouse.guard.freshness import view_freshness
from featurehouse.guard.logic_gate import logic_changes
from featurehouse.guard.parity import check_parity
from featurehouse.guard.schema_gate import compare, normalize_type
from featurehouse.guard.served import land_served
from featurehouse.guard.skew import measure_skew
from featurehouse.offline.lineage import LineageLog
from featurehouse.offline.published import read_published, view_schema
from featurehouse.offline.warehouse import Warehouse
from featurehouse.online.history import VALUE_EXAMPLE, record_deploy_gates
from featurehouse.online.keys import DEPLOY_CHECKS
from featurehouse.online.store import RedisOnlineStore
from featurehouse.registry.model import Registry


@dataclass
class Gate:
    gate: str  # schema | freshness | parity | skew | drift
    subject: str
    status: str  # pass | fail | skipped
    detail: str = ""


@dataclass
class DeployReport:
    model: str
    training_set_id: str
    gates: list[Gate] = field(default_factory=list)
    checked_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return not any(g.status == "fail" for g in self.gates)

    @property
    def failures(self) -> list[Gate]:
        return [g for g in self.gates if g.status == "fail"]


@dataclass(frozen=True)
class Thresholds:
    parity_sample: int = 1000
    max_parity_mismatch: float = 0.0
    max_skew: float = 0.01
    max_psi: float = 0.2


def deploy_check(registry: Registry, warehouse: Warehouse, online: RedisOnlineStore, catalog: Catalog, ref: str,
                 thresholds: Thresholds = Thresholds(), since: datetime | None = None) -> DeployReport:
    """Every gate for exactly the feature versions MODEL@VERSION was trained on; the verdict is stored
    online, where serving by `?model=NAME@VERSION` reads it."""
    log = LineageLog(catalog)
    mv = log.model_version(ref)
    record = log.training_set(mv.training_set_id)
    report = DeployReport(mv.ref, mv.training_set_id)
    views = {}
    # -- schema: the trained versions exist, with the trained types, and their contract is intact
    for feature in mv.features:
        base, _, version = feature.rpartition("@")
        view_name, _, column = base.partition(".")
        try:
            view = registry.view(view_name, int(version))
        except Exception as e:  # noqa: BLE001 - reported as the gate's failure
            report.gates.append(Gate("schema", feature, "fail", str(e)))
            continue
        current = view_schema(view).get(column)
        trained = record.schemas.get(feature)
        if current is None:
            report.gates.append(Gate("schema", feature, "fail", f"column '{column}' is gone from {view.versioned_name}"))
        elif normalize_type(current) != normalize_type(trained):
            report.gates.append(Gate("schema", feature, "fail", f"type changed {trained} -> {current} since training"))
        views[view.versioned_name] = view
    published = {k: v for k, v in read_published(catalog).items() if f"{k[0]}@{k[1]}" in views}
    gate = compare(published, {(v.name, v.version): view_schema(v) for v in views.values()})
    for change in gate.changes:
        report.gates.append(Gate("schema", f"{change.view}@{change.version}", "fail", change.message))
    for logic in logic_changes(registry, published):
        if not logic.ok:
            report.gates.append(Gate("schema", f"{logic.view}@{logic.version}", "fail", logic.message))
    if not any(g.gate == "schema" for g in report.gates):
        report.gates.append(Gate("schema", f"{len(mv.features)} features", "pass",
                                 f"at their trained versions and types in {len(views)} view(s)"))
    ordered = sorted(views.values(), key=lambda v: v.versioned_name)
    # -- freshness
    for row in view_freshness(ordered, warehouse, online.client, catalog=catalog):
        status = "fail" if row.status == "breach" else "pass"
        report.gates.append(Gate("freshness", row.versioned_name, status, "; ".join(row.reasons) or row.status))
    # -- parity
    for view in ordered:
        if not view.online:
            continue
        p = check_parity(warehouse, online, view, thresholds.parity_sample, catalog=catalog)
        worst = max(p.per_feature.items(), key=lambda kv: kv[1], default=None)
        detail = f"{p.mismatched:,} of {p.compared:,} entities differ ({p.rate:.2%})"
        if worst:
            example = p.examples[worst[0]][0]
            detail += (f"{VALUE_EXAMPLE}{worst[0]} of entity {example.entity_id}: online {example.online!r}, "
                       f"warehouse {example.warehouse!r}")
        report.gates.append(Gate("parity", view.versioned_name,
                                 "fail" if p.rate > thresholds.max_parity_mismatch else "pass", detail))
    # -- skew and drift, on served vectors of these features
    land_served(online.client, catalog)
    skews = measure_skew(registry, warehouse, catalog, None, since, mv.features)
    if not skews:
        report.gates.append(Gate("skew", "served vectors", "skipped", "none of these features were served and logged yet"))
    for s in skews:
        report.gates.append(Gate("skew", s.feature, "fail" if s.mismatch_rate > thresholds.max_skew else "pass",
                                 f"{s.mismatches:,} of {s.compared:,} served values differ from point-in-time "
                                 f"({s.mismatch_rate:.2%})"))
    drifts = [d for d in measure_drift(catalog, mv.training_set_id, None, since) if d.feature in mv.features]
    judged = [d for d in drifts if d.psi is not None]
    if not judged:
        report.gates.append(Gate("drift", "served vectors", "skipped",
                                 f"too few served values to judge: drift needs {MIN_SERVED} per feature"))
    for d in judged:
        assert d.psi is not None  # judged holds the drifts with a PSI only
        report.gates.append(Gate("drift", d.feature, "fail" if d.psi > thresholds.max_psi else "pass",
                                 f"PSI {d.psi:.3f} over {d.served:,} served values"))
    online.client.hset(DEPLOY_CHECKS, mv.ref, json.dumps({
        "ok": report.ok, "checked_at": report.checked_at,
        "failures": [f"{g.gate}: {g.subject}: {g.detail}" for g in report.failures][:20]}))
    _remember_gates(online, report)
    return report


def _remember_gates(online: RedisOnlineStore, report: DeployReport) -> None:
    """Every gate, for the web catalog's model page and health (skew and drift of the models using a view),
    without parity's example values; a store that refuses them costs the catalog its table, never the check."""
    import redis

    try:
        record_deploy_gates(online.client, report.model, report.checked_at,
                            [(g.gate, g.subject, g.status, g.detail) for g in report.gates])
    except redis.RedisError:
        pass
