"""The catalog's pages as HTML, from templates (jinja2, autoescaped): the same pages for `featurehouse
serve` (under /ui) and for the static export (`featurehouse docs generate`), which differ only in their
links and in where freshness comes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Sequence
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from featurehouse.ui.catalog import PER_PAGE, CatalogIndex, ViewEntry
from featurehouse.ui.graph import Node, dbt_node, flow_svg
from featurehouse.ui.sparkline import lag_points, sparkline_svg

if TYPE_CHECKING:
    from featurehouse.offline.versions import VersionPeriod
    from featurehouse.ui.observed import ModelVersionEntry, Observed
    from featurehouse.ui.verdicts import ViewHealth


class Links(Protocol):
    @property
    def is_static(self) -> bool: ...

    def home(self) -> str: ...
    def search(self) -> str: ...
    def view(self, name: str) -> str: ...
    def health(self) -> str: ...
    def models(self) -> str: ...
    def model(self, ref: str) -> str: ...
    def static(self, name: str) -> str: ...
    def page(self, query: str | None, number: int) -> str: ...


@dataclass(frozen=True)
class ServerLinks:
    """Links of the pages `featurehouse serve` answers under `prefix`."""

    prefix: str = "/ui"
    is_static: bool = False

    def home(self) -> str:
        return self.prefix

    def search(self) -> str:
        return self.prefix

    def view(self, name: str) -> str:
        return f"{self.prefix}/views/{quote(name, safe='')}"

    def health(self) -> str:
        return f"{self.prefix}/health"

    def models(self) -> str:
        return f"{self.prefix}/models"

    def model(self, ref: str) -> str:
        return f"{self.prefix}/models/{quote(ref, safe='@')}"

    def static(self, name: str) -> str:
        return f"{self.prefix}/static/{name}"

    def page(self, query: str | None, number: int) -> str:
        return f"{self.prefix}?" + urlencode({**({"q": query} if query else {}), "page": number})


@dataclass(frozen=True)
class StaticLinks:
    """Relative links between the exported files; `root` leads from the page's folder to the export's."""

    root: str = ""
    is_static: bool = True

    def home(self) -> str:
        return f"{self.root}index.html"

    def search(self) -> str:
        return f"{self.root}search.html"

    def view(self, name: str) -> str:
        return f"{self.root}views/{quote(name, safe='')}.html"

    def health(self) -> str:
        return f"{self.root}health.html"

    def models(self) -> str:
        return f"{self.root}models.html"

    def model(self, ref: str) -> str:
        return f"{self.root}models/{quote(model_file(ref), safe='@')}"

    def static(self, name: str) -> str:
        return f"{self.root}static/{name}"

    def page(self, query: str | None, number: int) -> str:
        return f"{self.root}index.html" if number == 1 else f"{self.root}index-{number}.html"


def model_file(ref: str) -> str:
    """The export's file of a model version: its name, any character a file name may not hold escaped."""
    return quote(ref, safe="@") + ".html"


@dataclass(frozen=True)
class FreshnessPanel:
    """A view's freshness as a page shows it: a status, one sentence, the reasons, and where it comes from."""

    status: str  # ok | breach | no-slo | unknown
    summary: str
    reasons: tuple[str, ...] = ()
    source: str = ""
    lag_s: float | None = None  # the materializers' lag now (None: never materialized, or not known)
    # (label, value) of what it was judged from: newest event, last sync, stream lag, SLO
    facts: tuple[tuple[str, str], ...] = ()


@dataclass
class Renderer:
    index: CatalogIndex
    project: str = ""
    generated_at: str | None = None  # the static export's time (its health is as of then)
    env: Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = Environment(loader=PackageLoader("featurehouse.ui", "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.env.filters["when"] = when

    def _render(self, template: str, links: Links, signed_in: bool = False, **context) -> str:
        return self.env.get_template(template).render(index=self.index, links=links, project=self.project,
                                                      generated_at=self.generated_at, signed_in=signed_in, **context)

    def catalog(self, links: Links, query: str = "", page: int = 1, per_page: int = PER_PAGE,
                signed_in: bool = False, missing: str | None = None) -> str:
        """The views (no query) or the features matching the query, a page at a time; `missing`: the view
        a link asked for that does not exist (the page then searches for its name)."""
        query = query.strip()
        if query:
            return self._render("catalog.html", links, signed_in, query=query, missing=missing,
                                page=self.index.search(query, page, per_page), views=self.index.matching_views(query))
        return self._render("catalog.html", links, signed_in, query="", page=self.index.view_page(page, per_page),
                            views=[])

    def view(self, links: Links, view: ViewEntry, health: ViewHealth | None = None,
             observed: Observed | None = None, now_s: float | None = None, signed_in: bool = False,
             history: Sequence[VersionPeriod] | None = None) -> str:
        """A view's page: its facts, health (freshness, parity, the gates of models trained on it, lag over
        time, served counts), versions (schemas, promote history, what a candidate would break), SQL and
        lineage down to the model versions. `history`: the promote log (the export reads it; None: not read)."""
        from featurehouse.ui.observed import Observed
        from featurehouse.ui.verdicts import impacts

        observed = observed or Observed()
        models = observed.models_using(view.name)
        freshness = health.freshness if health else None
        spark = self._sparkline(view, health, now_s)
        candidates = [(c, impacts(view, c, models)) for c in view.candidates]
        # models trained on an earlier version than the active one (a candidate's are not behind)
        current = [i for i in impacts(view, view.version, models) if i.trained < view.version]
        return self._render("view.html", links, signed_in, view=view, health=health, freshness=freshness, query="",
                            problem=observed.problem,
                            models=models, sparkline=Markup(spark), candidates=candidates, behind=current,
                            history=history, serving_version=observed.active.get(view.name),
                            lineage=Markup(self._view_lineage(links, view, models)))  # escaped in graph.py

    def _view_lineage(self, links: Links, view: ViewEntry, models: list[ModelVersionEntry]) -> str:
        """Columns: what the view reads, the view, the training sets recorded from it (when any), then the
        model versions trained on them and the exposures using it that have no registered version."""
        sets: dict[str, int] = {}  # training set -> its row in its column
        for m in models:
            sets.setdefault(m.training_set_id, len(sets))
        exposures = [name for name in view.used_by if name not in {m.model for m in models}]
        set_nodes = [Node(f"training set {ident}", "trainingset",
                          links.model(next(m.ref for m in models if m.training_set_id == ident))) for ident in sets]
        columns = [[dbt_node(u) for u in view.upstream], [Node(view.name, "view")], *([set_nodes] if sets else []),
                   [Node(f"{m.ref} ({m.status})", m.status, links.model(m.ref)) for m in models]
                   + [Node(f"{name} (exposure)", "exposure") for name in exposures]]
        last = len(columns) - 1
        edges = [((0, i), (1, 0)) for i in range(len(columns[0]))]
        edges += [((1, 0), (2, j)) for j in range(len(set_nodes))]
        edges += [((2, sets[m.training_set_id]), (last, k)) for k, m in enumerate(models)]  # models imply sets
        edges += [((1, 0), (last, len(models) + k)) for k in range(len(exposures))]
        title = (f"Lineage of {view.name}: {len(view.upstream)} upstream dbt nodes, {len(sets)} training sets, "
                 f"{len(models)} model versions, {len(exposures)} models (exposures) without a registered version")
        return flow_svg(columns, edges, title)

    def health(self, links: Links, healths: dict[str, ViewHealth], source: str, signed_in: bool = False,
               now_s: float | None = None) -> str:
        """Every view's health on one page, failing first, each with its lag over time: what a team puts on
        a screen."""
        from featurehouse.ui.verdicts import ORDER, tally

        rows = sorted(((v, healths[name], Markup(self._sparkline(v, healths[name], now_s)))
                       for name, v in self.index.views.items() if name in healths),
                      key=lambda row: (ORDER.get(row[1].status, 1), row[0].name))
        problem = next((h.problem for h in healths.values() if h.problem), "")
        return self._render("health.html", links, signed_in, query="", rows=rows, counts=tally(healths), source=source,
                            problem=problem)

    @staticmethod
    def _sparkline(view: ViewEntry, health: ViewHealth | None, now_s: float | None) -> str:
        freshness = health.freshness if health else None
        live = freshness.lag_s if freshness else None
        if health is None or not (health.lag or live is not None):
            return ""
        return sparkline_svg(lag_points(health.lag, now_s, live), view.freshness_slo_s,
                             f"Materializer lag of {view.versioned_name}")

    def models(self, links: Links, observed: Observed, signed_in: bool = False, missing: str | None = None) -> str:
        """Every registered model version with its training set and deploy-check verdict; `missing`: the model
        version a link asked for that is not registered."""
        order = {"failed": 0, "unchecked": 1, "passed": 2}
        entries = sorted(observed.models.values(), key=lambda m: (m.model, m.registered_at, m.version))
        counts = [(s, n) for s in order if (n := sum(1 for m in entries if m.status == s))]
        return self._render("models.html", links, signed_in, query="", entries=entries, counts=counts, missing=missing,
                            problem=observed.problem)

    def model(self, links: Links, entry: ModelVersionEntry, observed: Observed, signed_in: bool = False) -> str:
        """A model version: its training set (spine fingerprint, features at their versions, profile), its
        deploy-check verdict gate by gate, and what moving any of its views to another version would break."""
        from featurehouse.ui.verdicts import impacts

        views = entry.views
        by_view = []
        for name, trained in sorted(views.items()):
            current = self.index.views.get(name)
            features = [f for f in entry.features if f.partition(".")[0] == name]
            moves = [] if current is None else [
                impact for target in sorted({current.version, *current.candidates} - {trained})
                for impact in impacts(current, target, [entry])]
            withheld = current is None or current.restricted(trained)
            by_view.append((name, trained, current, features, moves, withheld))
        columns = [[Node(f"{name}@{trained}", "view", links.view(name) if name in self.index.views else None)
                    for name, trained in sorted(views.items())],
                   [Node(f"training set {entry.training_set_id}", "trainingset")],
                   [Node(f"{entry.ref} ({entry.status})", entry.status)]]
        edges = [((0, i), (1, 0)) for i in range(len(columns[0]))] + [((1, 0), (2, 0))]
        picture = flow_svg(columns, edges, f"Lineage of {entry.ref}: {len(views)} feature views, training set "
                                           f"{entry.training_set_id}")
        others = [m for m in observed.models.values() if m.model == entry.model and m.ref != entry.ref]
        return self._render("model.html", links, signed_in, query="", entry=entry, by_view=by_view,
                            others=sorted(others, key=lambda m: (m.registered_at, m.version)),
                            lineage=Markup(picture))

    def login(self, links: Links, next_path: str, error: str = "", open_server: bool = False, hours: int = 8) -> str:
        return self._render("login.html", links, query="", next=next_path, error=error, open=open_server,
                            hours=hours, login_url=f"{links.home()}/login", sign_in_page=True)  # nothing of the catalog

    def static_search(self, links: Links) -> str:
        return self._render("static_search.html", links, query="")


def when(epoch_s: float | None) -> str:
    """Epoch seconds as the pages write times (UTC, to the second)."""
    from datetime import datetime, timezone

    if not epoch_s:
        return ""
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
