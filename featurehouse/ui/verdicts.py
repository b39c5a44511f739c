"""A view's health on one line, judged from every guard that looked at it: its freshness (the check's or
the marks'), its last parity check, and the deploy-check gates of the model versions trained on it.

    failing   a guard fails: freshness breached, online differs from the warehouse (parity), or a model's
              schema, parity or skew gate failed on this view's features
    warning   only drift: served values moved away from a model's training set (the world changed, the
              pipeline did not), or nothing can tell (an offline view, no data yet)
    ok        watched (an SLO, a parity check or a deploy check) and nothing fails
    unwatched no SLO, no parity check, no model's deploy check: nothing to judge by
"""

from __future__ import annotations

from dataclasses import dataclass

from featurehouse.online.history import LagSample, ParityResult
from featurehouse.ui.catalog import ViewEntry
from featurehouse.ui.observed import GateResult, ModelVersionEntry, Observed
from featurehouse.ui.pages import FreshnessPanel

ORDER = {"failing": 0, "warning": 1, "ok": 2, "unwatched": 3}


@dataclass(frozen=True)
class ViewHealth:
    status: str  # failing | warning | ok | unwatched
    reasons: tuple[str, ...]
    freshness: FreshnessPanel | None
    parity: ParityResult | None
    gates: tuple[tuple[ModelVersionEntry, GateResult], ...]
    lag: tuple[LagSample, ...]
    served: float | None  # values served (None: not known where this page was made)
    nulls: tuple[tuple[str, float], ...]  # (view.column, null values served), most first
    problem: str = ""  # why the guards' observations are missing ("": they were read)

    @property
    def summary(self) -> str:
        return self.reasons[0] if self.reasons else self.freshness.summary if self.freshness else "nothing watches it"


def judge(view: ViewEntry, freshness: FreshnessPanel | None, observed: Observed) -> ViewHealth:
    versioned = view.versioned_name
    parity = observed.parity.get(versioned)
    gates = tuple(observed.gates_about(view.name, view.version))
    failing, warning = [], []
    if freshness is not None and freshness.status == "breach":
        failing += [f"freshness: {r}" for r in freshness.reasons] or [f"freshness: {freshness.summary}"]
    if parity is not None and not parity.ok:
        failing.append(f"parity: {parity.summary}")
    for model, gate in gates:
        if gate.status == "fail":
            (warning if gate.gate == "drift" else failing).append(f"{gate.gate} ({model.ref}): {gate.subject}: {gate.detail}")
    if freshness is not None and freshness.status == "unknown":
        warning.append(freshness.summary)
    watched = (freshness is not None and freshness.status in ("ok", "breach")) or parity is not None or bool(gates)
    status = "failing" if failing else "warning" if warning else "ok" if watched else "unwatched"
    prefix = f"{view.name}."
    nulls = tuple(sorted(((k, n) for k, n in observed.nulls.items() if k.startswith(prefix) and n),
                         key=lambda kv: (-kv[1], kv[0])))
    served = observed.served.get(view.name, 0.0) if observed.served_source else None
    return ViewHealth(status, tuple(failing + warning), freshness, parity, gates,
                      tuple(observed.lag.get(versioned, ())), served, nulls, observed.problem)


def tally(healths: dict[str, ViewHealth]) -> list[tuple[str, int]]:
    return [(status, n) for status in ORDER if (n := sum(1 for h in healths.values() if h.status == status))]


@dataclass(frozen=True)
class Impact:
    """What moving a view to another version means for one model version trained on it."""

    model: ModelVersionEntry
    trained: int  # the view's version the model was trained on
    target: int  # the version the view would move to
    breaks: tuple[str, ...]  # features the target version removes or retypes, in words

    @property
    def status(self) -> str:
        return "breaks" if self.breaks else "retrain"


def impacts(view: ViewEntry, target: int, models: list[ModelVersionEntry]) -> list[Impact]:
    """For each model version trained on `view`, what its features become at version `target`: gone or of
    another type (it breaks: retraining cannot keep the same features), or the same (retrain to move;
    serving by `?model=NAME@VERSION` keeps reading the trained version meanwhile)."""
    from featurehouse.types import canonical  # here: a serving worker imports sqlglot only if a page compares types

    new = view.schema(target)
    out = []
    for model in models:
        trained = model.views.get(view.name)
        if trained is None or trained == target:
            continue
        old = view.schema(trained)
        broken = []
        for feature in model.features:
            base, _, version = feature.rpartition("@")
            name, _, column = base.partition(".")
            if name != view.name or int(version) != trained:
                continue
            if column not in new:
                broken.append(f"{column}: not in v{target}")
            elif old.get(column) and new[column] and canonical(old[column]) != canonical(new[column]):
                broken.append(f"{column}: {old[column]} in v{trained}, {new[column]} in v{target}")
        out.append(Impact(model, trained, target, tuple(broken)))
    return out
