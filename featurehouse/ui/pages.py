"""The catalog's pages as HTML, from templates (jinja2, autoescaped): the same pages for `featurehouse
serve` (under /ui) and for the static export (`featurehouse docs generate`), which differ only in their
links and in where freshness comes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from featurehouse.ui.catalog import PER_PAGE, CatalogIndex, ViewEntry
from featurehouse.ui.graph import Node, dbt_node, lineage_svg


class Links(Protocol):
    @property
    def is_static(self) -> bool: ...

    def home(self) -> str: ...
    def search(self) -> str: ...
    def view(self, name: str) -> str: ...
    def health(self) -> str: ...
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

    def static(self, name: str) -> str:
        return f"{self.root}static/{name}"

    def page(self, query: str | None, number: int) -> str:
        return f"{self.root}index.html" if number == 1 else f"{self.root}index-{number}.html"


@dataclass(frozen=True)
class FreshnessPanel:
    """A view's freshness as a page shows it: a status, one sentence, the reasons, and where it comes from."""

    status: str  # ok | breach | no-slo | unknown
    summary: str
    reasons: tuple[str, ...] = ()
    source: str = ""


@dataclass
class Renderer:
    index: CatalogIndex
    project: str = ""
    generated_at: str | None = None  # the static export's time (its health is as of then)
    env: Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = Environment(loader=PackageLoader("featurehouse.ui", "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)

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

    def view(self, links: Links, view: ViewEntry, freshness: FreshnessPanel | None = None,
             signed_in: bool = False) -> str:
        picture = lineage_svg([dbt_node(u) for u in view.upstream], Node(view.name, "view"),
                              [Node(f"{m} (model)", "exposure") for m in view.used_by],
                              f"Lineage of {view.name}: {len(view.upstream)} upstream dbt nodes, "
                              f"{len(view.used_by)} models using it")
        return self._render("view.html", links, signed_in, view=view, freshness=freshness, query="",
                            lineage=Markup(picture))  # built by graph.py, every name escaped there

    def health(self, links: Links, panels: dict[str, FreshnessPanel], source: str, signed_in: bool = False) -> str:
        """Every view's freshness on one page, breaches first: what a team puts on a screen."""
        order = {"breach": 0, "unknown": 1, "no-slo": 2, "ok": 3}
        rows = sorted(((v, panels[name]) for name, v in self.index.views.items() if name in panels),
                      key=lambda row: (order.get(row[1].status, 1), row[0].name))
        counts = [(status, n) for status in ("breach", "unknown", "no-slo", "ok")
                  if (n := sum(1 for _, p in rows if p.status == status))]
        return self._render("health.html", links, signed_in, query="", rows=rows, counts=counts, source=source)

    def login(self, links: Links, next_path: str, error: str = "", open_server: bool = False, hours: int = 8) -> str:
        return self._render("login.html", links, query="", next=next_path, error=error, open=open_server,
                            hours=hours, login_url=f"{links.home()}/login", sign_in_page=True)  # nothing of the catalog

    def static_search(self, links: Links) -> str:
        return self._render("static_search.html", links, query="")
