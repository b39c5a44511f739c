"""The one access decision: may this principal (acting for this model) read this feature view?

Sensitivity ranks public < internal < confidential < pii. Every principal reads public and internal
views; confidential and pii views are read by the owner team's members and by members of a team the
view is shared with (`shared_with`, a grant with a purpose that may expire). A read for a model (an
exposure: `model=`, `--model`) is also checked against the model's team, so a model cannot carry a
feature across teams that its team was not granted, whoever asks. A project that declares no teams has
no policy: every read is allowed, and `featurehouse check` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from featurehouse.errors import FeaturehouseError
from featurehouse.registry.model import SENSITIVITIES, FeatureView, Grant, ModelSpec, Registry

OPEN_TO_ALL = ("public", "internal")  # sensitivities every principal reads


class AccessDenied(FeaturehouseError):
    """A principal may not read a feature: names the principal, the feature and the grant that would allow it."""

    def __init__(self, decision: "Decision"):
        self.decision = decision
        super().__init__(decision.message)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    principal: str
    view: str  # view@version
    sensitivity: str
    reason: str
    grant: Grant | None = None  # the grant that allowed it
    remedy: str | None = None  # for a denial: what would allow it
    model: str | None = None

    @property
    def message(self) -> str:
        who = f"principal '{self.principal}'" + (f" (for model '{self.model}')" if self.model else "")
        if self.allowed:
            return f"{who} may read {self.view}: {self.reason}"
        return f"{who} may not read {self.view}: {self.reason}" + (f"; {self.remedy}" if self.remedy else "")

    def as_dict(self) -> dict:
        return {"allowed": self.allowed, "principal": self.principal, "view": self.view, "model": self.model,
                "sensitivity": self.sensitivity, "reason": self.reason,
                "grant": str(self.grant) if self.grant else None, "remedy": self.remedy}


def rank(sensitivity: str) -> int:
    return SENSITIVITIES.index(sensitivity)


class Policy:
    """The project's access policy, from its registry (teams, views' owners and grants, models' teams)."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.enforced = bool(registry.teams)
        self._teams_of: dict[str, frozenset[str]] = {}
        for team in registry.teams.values():
            for member in team.members:
                self._teams_of[member] = self._teams_of.get(member, frozenset()) | {team.name}

    def teams_of(self, principal: str) -> frozenset[str]:
        return self._teams_of.get(principal, frozenset())

    def decide(self, principal: str, view: FeatureView, day: date, model: ModelSpec | None = None) -> Decision:
        """Allowed or denied, and why, for `principal` reading `view` (for `model`, when given) on `day` (UTC)."""
        model_name = model.name if model else None
        if not self.enforced:
            return Decision(True, principal, view.versioned_name, view.sensitivity,
                            "no teams are declared (vars.featurehouse.teams): access is not enforced", model=model_name)
        if model is not None:
            team_decision = self._decide_teams(principal, {model.team} if model.team else set(), view, day,
                                               f"model '{model.name}' of team '{model.team}'")
            if not team_decision.allowed:
                return Decision(False, principal, view.versioned_name, view.sensitivity, team_decision.reason,
                                remedy=team_decision.remedy, model=model_name)
        decision = self._decide_teams(principal, set(self.teams_of(principal)), view, day, f"principal '{principal}'")
        return Decision(decision.allowed, principal, view.versioned_name, view.sensitivity, decision.reason,
                        decision.grant, decision.remedy, model_name)

    def _decide_teams(self, principal: str, teams: set[str], view: FeatureView, day: date, who: str) -> Decision:
        name, sensitivity = view.versioned_name, view.sensitivity
        if sensitivity in OPEN_TO_ALL:
            return Decision(True, principal, name, sensitivity, f"{sensitivity} views are readable by every principal")
        if view.owner in teams:
            return Decision(True, principal, name, sensitivity, f"{who} is in the owner team '{view.owner}'")
        expired = []
        for grant in view.shared_with:
            if grant.team in teams:
                if grant.active_on(day):
                    return Decision(True, principal, name, sensitivity, f"shared with team '{grant.team}' "
                                    f"for {grant.purpose!r}" + (f" until {grant.until}" if grant.until else ""), grant)
                expired.append(grant)
        teams_text = ", ".join(sorted(teams)) or "no team"
        member = "" if who.startswith("model ") else f" ({teams_text})"
        reason = f"{view.name} is {sensitivity}, owned by team '{view.owner}', and {who}{member} "
        if expired:
            reason += f"had a grant that expired on {expired[0].until}"
        else:
            reason += "has no grant"
        team = next(iter(sorted(teams)), None)
        if expired:
            return Decision(False, principal, name, sensitivity, reason,
                            remedy=f"extend `until` of the grant to team '{expired[0].team}' in meta.featurehouse.shared_with "
                                   f"of model '{view.model or view.name}' (owner team '{view.owner}' reviews it)")
        remedy = (f"add {{team: {team}, purpose: <why>, until: <date>}} to meta.featurehouse.shared_with of model "
                  f"'{view.model or view.name}' (owner team '{view.owner}' reviews it)" if team else
                  f"add the principal to team '{view.owner}' in vars.featurehouse.teams, or to a team in "
                  f"meta.featurehouse.shared_with of model '{view.model or view.name}'")
        return Decision(False, principal, name, sensitivity, reason, remedy=remedy)

    def model_violations(self, model: ModelSpec, day: date, views: list[FeatureView] | None = None) -> list[Decision]:
        """The views a model uses (its exposure's features, or `views`) that its team may not read (what
        `featurehouse check` fails on)."""
        if not self.enforced:
            return []
        if views is None:
            views = [self.registry.resolve(text)[0] for text in model.features]
        seen, denied = set(), []
        for view in views:
            if view.versioned_name in seen:
                continue
            seen.add(view.versioned_name)
            decision = self._decide_teams(f"team:{model.team}", {model.team} if model.team else set(), view, day,
                                          f"model '{model.name}' of team '{model.team}'")
            if not decision.allowed:
                denied.append(Decision(False, f"team:{model.team}", view.versioned_name, view.sensitivity,
                                       decision.reason, remedy=decision.remedy, model=model.name))
        return denied

    def hygiene(self, day: date) -> list[str]:
        """Grants that change nothing (to the owner team, on a view every principal reads) or have expired: worth a
        look in review, not a failure."""
        notes = []
        for view in sorted(self.registry.views.values(), key=lambda v: v.versioned_name):
            for grant in view.shared_with:
                where = f"{view.versioned_name}: grant to team '{grant.team}' ({grant.purpose!r})"
                if grant.team == view.owner:
                    notes.append(f"{where} names the owner team, which reads the view anyway")
                elif view.sensitivity in OPEN_TO_ALL:
                    notes.append(f"{where} changes nothing: {view.sensitivity} views are readable by every principal")
                elif not grant.active_on(day):
                    notes.append(f"{where} expired on {grant.until}")
        return notes
