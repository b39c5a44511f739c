"""What the web catalog shows, built once from the registry: one entry per feature view and feature,
and a search over them that the server runs (paginated), so a page of 10,000 features costs what a page
of 50 does.

Search: every word of the query must appear (case-insensitive) in a feature's own text (name, type,
description) or in its view's (name, entity and keys, owner, tags, description, dbt model). A view
matches as a whole when its own text holds every word."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from featurehouse.durations import format_duration
from featurehouse.registry.model import RESTRICTED, FeatureView, Registry

PER_PAGE = 50


@dataclass(frozen=True)
class FeatureEntry:
    view: str
    version: int
    column: str
    data_type: str
    description: str

    @property
    def name(self) -> str:
        return f"{self.view}.{self.column}"


@dataclass(frozen=True)
class ViewEntry:
    name: str
    version: int
    versions: tuple[int, ...]  # every version of the view the registry holds
    entity: str
    keys: tuple[str, ...]
    owner: str
    freshness_slo: str
    ttl: str
    serving_delay: str
    sensitivity: str
    shared_with: tuple[str, ...]  # its grants: `team for 'purpose' until day`
    tags: tuple[str, ...]
    description: str
    online: bool
    model: str  # the dbt model
    source_file: str
    upstream: tuple[str, ...]  # the dbt nodes the model reads
    features: tuple[FeatureEntry, ...]
    used_by: tuple[str, ...] = ()  # the models (dbt exposures) that use its features
    # every version the registry holds, with its features' types: version -> ((column, type), ...)
    schemas: tuple[tuple[int, tuple[tuple[str, str], ...]], ...] = ()
    sql: str = ""  # the dbt model's SQL, compiled when dbt compiled it (sql_compiled)
    sql_compiled: bool = False
    sensitivities: tuple[tuple[int, str], ...] = ()  # every version's sensitivity (it may change between versions)
    freshness_slo_s: float | None = None  # the SLO in seconds (the sparkline's dashed line)

    def restricted(self, version: int) -> bool:
        """Whether the view at `version`, or as it is now, is confidential or pii (an unknown version is):
        the catalog shows no aggregate of such a view's values."""
        at = dict(self.sensitivities).get(version)
        return at is None or at in RESTRICTED or self.sensitivity in RESTRICTED

    def schema(self, version: int) -> dict[str, str]:
        return dict(next((columns for v, columns in self.schemas if v == version), ()))

    @property
    def candidates(self) -> tuple[int, ...]:
        """Versions newer than the active one: built (featurehouse backfill), not promoted yet."""
        return tuple(v for v in self.versions if v > self.version)

    @property
    def versioned_name(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Page:
    """One page of a listing: its items, and where it sits among all of them."""

    items: tuple
    total: int
    page: int
    pages: int


def duration(value: timedelta | None) -> str:
    """A duration as the YAML spells it (15m, 1d6h); empty when not set."""
    return "" if value is None else format_duration(value)


def view_entry(view: FeatureView, versions: tuple[int, ...], used_by: tuple[str, ...] = (),
               schemas: tuple[tuple[int, tuple[tuple[str, str], ...]], ...] = (),
               sensitivities: tuple[tuple[int, str], ...] = ()) -> ViewEntry:
    return ViewEntry(
        name=view.name, version=view.version, versions=versions, entity=view.entity.name, keys=view.entity.keys,
        owner=view.owner or "", freshness_slo=duration(view.freshness_slo), ttl=duration(view.ttl),
        serving_delay=duration(view.serving_delay), sensitivity=view.sensitivity,
        shared_with=tuple(str(g) for g in view.shared_with), tags=view.tags, description=view.description,
        online=view.online, model=view.model, source_file=view.original_file_path, upstream=view.depends_on,
        features=tuple(FeatureEntry(view.name, view.version, f.column, f.data_type or "", f.description)
                       for f in view.features), used_by=used_by, schemas=schemas, sql=view.sql,
        sql_compiled=view.sql_compiled, sensitivities=sensitivities or ((view.version, view.sensitivity),),
        freshness_slo_s=view.freshness_slo.total_seconds() if view.freshness_slo else None)


class CatalogIndex:
    """The registry's views (each at the version serving reads by default) and their features, with the
    lowercased text each is searched by."""

    def __init__(self, registry: Registry):
        self.views: dict[str, ViewEntry] = {}
        users: dict[str, set[str]] = {}
        for model in registry.models.values():
            for feature in model.features:
                users.setdefault(feature.split(".", 1)[0].strip(), set()).add(model.name)
        for name in registry.view_names():
            view = registry.view(name)
            versions = tuple(sorted(registry.versions(name)))
            every = [registry.view(name, v) for v in versions]
            schemas = tuple((v.version, tuple((f.column, f.data_type or "") for f in v.features)) for v in every)
            self.views[name] = view_entry(view, versions, tuple(sorted(users.get(name, ()))), schemas,
                                          tuple((v.version, v.sensitivity) for v in every))
        self._view_text = {name: _text(v.name, v.entity, *v.keys, v.owner, *v.tags, v.description, v.model)
                           for name, v in self.views.items()}
        self._features = [(f, _text(f.name, f.data_type, f.description))
                          for v in self.views.values() for f in v.features]

    @property
    def feature_count(self) -> int:
        return len(self._features)

    def view_page(self, page: int = 1, per_page: int = PER_PAGE) -> Page:
        return _paged(sorted(self.views.values(), key=lambda v: v.name), page, per_page)

    def search(self, query: str, page: int = 1, per_page: int = PER_PAGE, clamp: bool = True) -> Page:
        """The features matching every word of `query`, by view then feature name; past the last page,
        the last page (`clamp`, for a person) or nothing (for a program paging until the end)."""
        words = query.lower().split()
        hits = [f for f, own in self._features
                if all(w in own or w in self._view_text[f.view] for w in words)]
        return _paged(hits, page, per_page, clamp)

    def matching_views(self, query: str) -> list[ViewEntry]:
        """Views whose own text holds every word (shown above the features: a team's or a tag's views)."""
        words = query.lower().split()
        return [v for name, v in sorted(self.views.items()) if words and all(w in self._view_text[name] for w in words)]


    def search_index(self) -> dict:
        """What the static export's search reads (static/search.js): each view's searched text and what a
        result row shows, and each feature as [view, column, type, description, its searched text]."""
        return {"views": {name: {"text": self._view_text[name], "entity": v.entity, "owner": v.owner,
                                 "description": v.description} for name, v in self.views.items()},
                "features": [[f.view, f.column, f.data_type, f.description, own] for f, own in self._features]}


def _text(*parts: str) -> str:
    return " ".join(p.lower() for p in parts if p)


def _paged(items: list, page: int, per_page: int, clamp: bool = True) -> Page:
    pages = max(1, math.ceil(len(items) / per_page))
    page = min(max(1, page), pages) if clamp else max(1, page)
    start = (page - 1) * per_page
    return Page(tuple(items[start:start + per_page]), len(items), page, pages)
