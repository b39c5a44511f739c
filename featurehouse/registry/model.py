"""The registry's typed records: entities, features and feature views.

They are built from dbt's manifest (see `manifest.py`) or, for tests and benchmarks, by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

SENSITIVITIES = ("public", "internal", "confidential", "pii")
# sensitivities whose reads are audited and whose aggregates the web catalog neither keeps nor shows
RESTRICTED = ("confidential", "pii")


@dataclass(frozen=True)
class Entity:
    """An entity type and the columns that make up its key, e.g. card_merchant: (card_id, merchant_id)."""

    name: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Team:
    """A team (`vars.featurehouse.teams`): it owns feature views and models; its members are principals
    (people, service accounts, OS users) that act for it."""

    name: str
    members: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Grant:
    """A view shared beyond its owner team (`meta.featurehouse.shared_with`): for a purpose, until a day
    (inclusive, UTC; None: no end)."""

    team: str
    purpose: str
    until: date | None = None

    def active_on(self, day: date) -> bool:
        return self.until is None or day <= self.until

    def __str__(self) -> str:
        return f"{self.team} for {self.purpose!r}" + (f" until {self.until.isoformat()}" if self.until else "")


@dataclass(frozen=True)
class Relation:
    """Where a view's rows live in the warehouse."""

    database: str | None
    schema: str | None
    identifier: str

    def parts(self) -> list[str]:
        return [p for p in (self.database, self.schema, self.identifier) if p]


@dataclass(frozen=True)
class Feature:
    """One column of a feature view: `view.column`, at the view's version."""

    view: str
    column: str
    data_type: str | None
    version: int
    description: str = ""

    @property
    def name(self) -> str:
        return f"{self.view}.{self.column}"

    @property
    def versioned_name(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class FeatureView:
    """A dbt model declared as a feature view by its `meta.featurehouse` block."""

    name: str
    version: int
    entity: Entity
    relation: Relation
    event_time: str
    features: tuple[Feature, ...]
    created_at: str | None = None
    owner: str | None = None
    freshness_slo: timedelta | None = None
    ttl: timedelta | None = None
    # How long featurehouse keeps its own offline copies of the view's data (landing rows, served
    # values, training-set profiles): `featurehouse retention` deletes older ones (featurehouse/sync/retention.py).
    retention: timedelta | None = None
    serving_delay: timedelta | None = None
    as_known_at: bool = False
    sensitivity: str = "internal"
    online: bool = True
    tags: tuple[str, ...] = ()
    description: str = ""
    model: str = ""
    unique_id: str = ""
    checksum: str = ""
    depends_on: tuple[str, ...] = ()
    original_file_path: str = ""
    # The data type of each entity key column, in `entity.keys` order (None: not declared or described):
    # pushed keys are coerced to it and stream landing tables are created with it, so a UNION with the
    # model agrees. Empty for views built by hand without it.
    key_types: tuple[str | None, ...] = ()
    # Rows pushed through the stream land in tables of their own; training and sync read them with the model.
    extra_relations: tuple[Relation, ...] = ()
    # A declared in-place correction of this version (meta.featurehouse.restatement: <reason>): its SQL
    # changed on purpose without a new version, and sync rewrites the values that changed.
    restatement: str | None = None
    # A hash of the model's SQL without its config() call, comments and spacing: what "the logic
    # changed" means for `featurehouse check` (metadata edits in config() change dbt's checksum only).
    logic_checksum: str = ""
    # Teams the view is shared with beyond its owner (only confidential and pii views need it).
    shared_with: tuple[Grant, ...] = ()
    # Pushed rows may leave features out (meta.featurehouse.partial_push: true); a feature left out is stored
    # as NULL. Otherwise a pushed row carries every feature (null for a NULL value): stream/rows.py.
    partial_push: bool = False
    # The model's SQL as dbt compiled it (as written, with `sql_compiled` False, when the manifest has no
    # compiled code yet: `dbt parse` compiles nothing): the web catalog's view page.
    sql: str = ""
    sql_compiled: bool = False

    @property
    def logic_ref(self) -> str:
        return f"{self.unique_id}@{self.logic_checksum}"

    @property
    def versioned_name(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return tuple(f.column for f in self.features)

    def feature(self, column: str) -> Feature:
        for f in self.features:
            if f.column == column:
                return f
        raise KeyError(column)


_REF = re.compile(r"^(?P<view>[^.@\s]+)\.(?P<column>[^@]+?)(?:@(?P<version>\d+))?$")


@dataclass(frozen=True)
class FeatureRef:
    """A requested feature: `view.column` or `view.column@N` (N pins a version)."""

    view: str
    column: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> "FeatureRef":
        from featurehouse.errors import InvalidRequest

        m = _REF.match(text.strip()) if isinstance(text, str) else None
        if not m:
            raise InvalidRequest(f"bad feature name {text!r}: expected view.column or view.column@version")
        v = m.group("version")
        return cls(m.group("view"), m.group("column"), int(v) if v else None)

    def __str__(self) -> str:
        return f"{self.view}.{self.column}" + (f"@{self.version}" if self.version is not None else "")


@dataclass(frozen=True)
class ModelSpec:
    """An ML model as a dbt exposure declares it: the features it consumes and where its labels are."""

    name: str
    features: tuple[str, ...]
    spine: str | None = None  # a dbt model holding the labels / rows to score
    timestamp: str | None = None  # the spine's as-of column
    owner: str | None = None
    description: str = ""
    unique_id: str = ""
    version: str | None = None  # the model version the exposure describes, when it names one
    training_set: str | None = None  # the recorded training set that version was trained on
    depends_on: tuple[str, ...] = ()  # dbt nodes the exposure depends on
    team: str | None = None  # the team the model belongs to: its features are read as that team's


class _Views(dict):
    """A registry's views by (name, version): a dict that counts changes to its keys, so what is derived
    from them (the index of versions by name) knows when to be rebuilt."""

    generation = 0

    def _changed(self) -> None:
        self.generation += 1

    def __setitem__(self, key, value) -> None:
        if key not in self:
            self._changed()
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self._changed()
        super().__delitem__(key)

    def pop(self, *args):
        self._changed()
        return super().pop(*args)

    def popitem(self):
        self._changed()
        return super().popitem()

    def clear(self) -> None:
        self._changed()
        super().clear()

    def update(self, *args, **kwargs) -> None:
        self._changed()
        super().update(*args, **kwargs)

    def setdefault(self, key, default=None):
        if key not in self:
            self._changed()
        return super().setdefault(key, default)


@dataclass
class Registry:
    """All entities and feature views of a project, by name and version, and the models that use them."""

    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[tuple[str, int], FeatureView] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)  # promoted versions (featurehouse promote)
    relations: dict[str, Relation] = field(default_factory=dict)  # dbt models, seeds, snapshots, sources by name
    teams: dict[str, Team] = field(default_factory=dict)  # vars.featurehouse.teams; empty: access not enforced

    # name -> its versions, sorted: derived from `views` and rebuilt when its keys change (a request resolves
    # several names; scanning every view for each made planning grow with the registry: bench/registry_scale.py)
    _by_name: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _indexed_at: int = field(default=-1, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.views, _Views):
            self.views = _Views(self.views)

    def __setattr__(self, name: str, value) -> None:
        if name == "views" and not isinstance(value, _Views):
            value = _Views(value)
        super().__setattr__(name, value)

    def add(self, view: FeatureView) -> None:
        self.views[(view.name, view.version)] = view

    def view_names(self) -> list[str]:
        return sorted(self._index())

    def versions(self, name: str) -> list[int]:
        return list(self._index().get(name, ()))

    def _index(self) -> dict[str, list[int]]:
        views = self.views
        assert isinstance(views, _Views)
        if self._indexed_at != views.generation:
            by_name: dict[str, list[int]] = {}
            for n, v in sorted(views):
                by_name.setdefault(n, []).append(v)
            self._by_name, self._indexed_at = by_name, views.generation
        return self._by_name

    def active_version(self, name: str) -> int:
        """The promoted version; before any promote, the first declared one (a new version waits for promote)."""
        versions = self.versions(name)
        promoted = self.active.get(name)
        return promoted if promoted in versions else versions[0]

    def view(self, name: str, version: int | None = None) -> FeatureView:
        """A view at a version; without one, its active version."""
        from featurehouse.errors import UnknownFeature

        versions = self.versions(name)
        if not versions:
            hint = _closest(name, self.view_names())
            if hint:
                raise UnknownFeature(f"unknown feature view '{name}' (did you mean '{hint}'?)")
            known = self.view_names()
            listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
            raise UnknownFeature(f"unknown feature view '{name}' (feature views: {listed or 'none declared'})")
        if version is None:
            version = self.active_version(name)
        if version not in versions:
            raise UnknownFeature(
                f"feature view '{name}' has no version {version} (versions: {', '.join(map(str, versions))})"
            )
        return self.views[(name, version)]

    def resolve(self, ref: FeatureRef | str) -> tuple[FeatureView, Feature]:
        """The view and feature a name refers to, or UnknownFeature naming it."""
        from featurehouse.errors import UnknownFeature

        ref = FeatureRef.parse(ref) if isinstance(ref, str) else ref
        view = self.view(ref.view, ref.version)
        try:
            return view, view.feature(ref.column)
        except KeyError:
            hint = _closest(ref.column, list(view.feature_columns))
            raise UnknownFeature(
                f"unknown feature '{ref}': view '{view.versioned_name}' has no feature column '{ref.column}'"
                + (f" (did you mean '{view.name}.{hint}'?)" if hint else "")
            ) from None

    def features(self) -> list[Feature]:
        return [f for key in sorted(self.views) for f in self.views[key].features]

    def model(self, name: str) -> ModelSpec:
        from featurehouse.errors import UnknownFeature

        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none declared"
            raise UnknownFeature(f"unknown model '{name}' (models with a featurehouse exposure: {known})")
        return self.models[name]


def _closest(word: str, candidates: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, candidates, n=1)
    return found[0] if found else None


def parse_entity_key(entity: Entity, text: str) -> tuple[str, ...]:
    """An entity key as users write it: `42` for one key column; `card_id=1;merchant_id=7` for several.

    In the `col=value;...` form, values are percent-encoded (`%3B` for `;`, `%3D` for `=`, `%25` for
    `%`); over HTTP, where the path is decoded once on arrival, encode them twice (`%253B`).
    """
    from urllib.parse import unquote

    from featurehouse.errors import InvalidRequest

    if len(entity.keys) == 1 and ("=" not in text or not text.startswith(entity.keys[0] + "=")):
        return (text,)
    parts = {}
    for piece in text.split(";"):
        name, sep, value = piece.partition("=")
        if not sep or name.strip() not in entity.keys:
            raise InvalidRequest(f"bad key {text!r} for entity '{entity.name}': write "
                                 + ";".join(f"{k}=<value>" for k in entity.keys))
        parts[name.strip()] = unquote(value)
    missing = [k for k in entity.keys if k not in parts]
    if missing:
        raise InvalidRequest(f"key {text!r} for entity '{entity.name}' lacks {', '.join(missing)}")
    return tuple(parts[k] for k in entity.keys)
