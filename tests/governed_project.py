"""A small dbt project written from scratch with an access policy: three teams, a view of every
sensitivity, grants (live and expired) and models of each team. Used by the governance tests."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.projects import REPO

TEAMS = {"risk": ["ana", "svc-risk"], "growth": ["gil", "svc-growth"], "recsys": ["rex"]}
# view -> (sensitivity, owner, grants as (team, days from today the grant ends, or None))
VIEWS = {
    "pub_stats": ("public", "recsys", []),
    "int_stats": ("internal", "risk", []),
    "conf_scores": ("confidential", "risk", [("growth", 30)]),
    "pii_profile": ("pii", "growth", [("risk", 30), ("recsys", -1)]),
    "pii_pairs": ("pii", "growth", [("recsys", 0)]),  # a composite key (user_item); a grant ending today
}
ENTITY_OF = {"pii_pairs": "user_item"}  # other views: user
ITEM = 7  # every user_item row's item


def entity_of(view: str) -> str:
    return ENTITY_OF.get(view, "user")


def key(view: str, user: int) -> str:
    """An entity id as serving takes it."""
    return f"user_id={user};item_id={ITEM}" if entity_of(view) == "user_item" else str(user)
MODELS = {  # exposure -> (team, features)
    "fraud_model": ("risk", ["int_stats.f", "conf_scores.f", "pii_profile.f"]),
    "churn_model": ("growth", ["conf_scores.f", "pii_profile.f"]),
    "rec_model": ("recsys", ["pub_stats.f", "int_stats.f"]),
}
PRINCIPALS = ["ana", "svc-risk", "gil", "rex", "nobody"]


def may_read(principal: str, view: str, model: str | None = None) -> bool:
    """The policy as docs/security.md states it, written again here by hand: the oracle of the matrix."""
    teams = {t for t, members in TEAMS.items() if principal in members}

    def team_may(team_set: set[str]) -> bool:
        sensitivity, owner, grants = VIEWS[view]
        if sensitivity in ("public", "internal") or owner in team_set:
            return True
        return any(t in team_set and days >= 0 for t, days in grants)  # a grant ending today still holds

    if model is not None and not team_may({MODELS[model][0]}):
        return False
    return team_may(teams)


def write_project(directory: Path, extra_exposures: str = "", views: dict | None = None,
                  models: dict | None = None) -> Path:
    """The project under `directory/governed`, on its own DuckDB file, installing this repo as its package."""
    path = directory / "governed"
    (path / "models").mkdir(parents=True)
    today = datetime.now(timezone.utc).date()
    teams = "\n".join(f"      {t}:\n        members: [{', '.join(m)}]" for t, m in TEAMS.items())
    (path / "dbt_project.yml").write_text(textwrap.dedent("""\
        name: governed
        version: "1.0.0"
        config-version: 2
        profile: governed
        model-paths: ["models"]
        vars:
          featurehouse:
            entities:
              user: [user_id]
              user_item: [user_id, item_id]
            teams:
        """) + teams + "\nmodels:\n  governed:\n    +materialized: table\n")
    (path / "profiles.yml").write_text(f"governed:\n  target: duckdb\n  outputs:\n    duckdb:\n      type: duckdb\n"
                                       f"      path: {path / 'governed.duckdb'}\n      threads: 1\n")
    (path / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    rows = ", ".join(f"({u}, timestamp '2026-01-0{u} 00:00:00', {u}.5)" for u in (1, 2, 3))
    blocks = []
    for i, (view, (sensitivity, owner, grants)) in enumerate((views or VIEWS).items()):
        pair = entity_of(view) == "user_item"
        (path / "models" / f"{view}.sql").write_text(
            f"select cast(user_id as bigint) as user_id, {f'cast({ITEM} as bigint) as item_id, ' if pair else ''}"
            f"event_time, cast(f + {i} as double) as f\nfrom (values {rows}) as t(user_id, event_time, f)\n")
        shared = "".join(f"\n            - {{team: {t}, purpose: 'use {i}', until: {today + timedelta(days=d)}}}"
                         for t, d in grants) or " []"
        blocks.append(f"""\
  - name: {view}
    config:
      meta:
        featurehouse:
          entity: {entity_of(view)}
          event_time: event_time
          owner: {owner}
          sensitivity: {sensitivity}
          shared_with:{shared}
    columns:
      - {{name: user_id, data_type: bigint}}{chr(10) + '      - {name: item_id, data_type: bigint}' if pair else ''}
      - {{name: event_time, data_type: timestamp}}
      - {{name: f, data_type: double}}
""")
    (path / "models" / "spine.sql").write_text(
        f"select cast(user_id as bigint) as user_id, cast({ITEM} as bigint) as item_id, "
        "timestamp '2026-02-01 00:00:00' as as_of\n"
        "from (values (1), (2), (3)) as t(user_id)\n")
    exposures = "".join(f"""\
  - name: {name}
    type: ml
    owner: {{name: {team}}}
    depends_on: [ref('spine')]
    meta:
      featurehouse:
        team: {team}
        spine: spine
        entity_timestamp: as_of
        features: [{', '.join(features)}]
""" for name, (team, features) in (MODELS if models is None else models).items())
    (path / "models" / "schema.yml").write_text("version: 2\nmodels:\n" + "".join(blocks)
                                                + ("exposures:\n" + exposures + extra_exposures
                                                   if exposures or extra_exposures else ""))
    return path
