"""The catalog as a static site (`featurehouse docs generate --out DIR`), like `dbt docs generate`: plain
files that open from disk or any web server, with freshness as of the export, so CI can publish it."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from featurehouse.ui.catalog import PER_PAGE, CatalogIndex
from featurehouse.ui.observed import Observed
from featurehouse.ui.pages import FreshnessPanel, Renderer, StaticLinks, model_file
from featurehouse.ui.verdicts import judge

if TYPE_CHECKING:
    from featurehouse.offline.versions import VersionPeriod

ASSETS = ("ui.css", "search.js")


def export_site(index: CatalogIndex, out: Path, freshness: dict[str, FreshnessPanel], project: str,
                generated_at: str, per_page: int = PER_PAGE, observed: Observed | None = None,
                history: Mapping[str, Sequence[VersionPeriod]] | None = None, now_s: float | None = None) -> int:
    """Write the site into `out` (made if missing; files of an earlier export are replaced); the number of
    pages written. `observed`: what the guards saw (model versions, parity, lag history), `history`: each
    view's promote log (None: not read), `now_s`: the export's time (the end of the sparklines)."""
    renderer = Renderer(index, project, generated_at)
    observed = observed or Observed()
    (out / "views").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    (out / "static").mkdir(exist_ok=True)
    # pages of an earlier export that this one does not write (a view since removed, fewer index pages)
    # would stay published: the site's own files go first, anything else in the folder stays
    for old in [*out.glob("index*.html"), *(out / "views").glob("*.html"), *(out / "models").glob("*.html")]:
        old.unlink()
    top, below = StaticLinks(""), StaticLinks("../")
    pages = index.view_page(1, per_page).pages
    for number in range(1, pages + 1):
        html = renderer.catalog(top, "", number, per_page)
        (out / ("index.html" if number == 1 else f"index-{number}.html")).write_text(html, encoding="utf-8")
    (out / "search.html").write_text(renderer.static_search(top), encoding="utf-8")
    source = (f"as of {generated_at}, from the same check as featurehouse freshness" if freshness
              else "was left out of this export (featurehouse docs generate --no-health)")
    healths = {name: judge(v, freshness.get(name), observed) for name, v in index.views.items()}
    (out / "health.html").write_text(renderer.health(top, healths, source, now_s=now_s), encoding="utf-8")
    for name, view in index.views.items():
        (out / "views" / f"{name}.html").write_text(
            renderer.view(below, view, healths[name], observed, now_s,
                          history=None if history is None else history.get(name, ())), encoding="utf-8")
    (out / "models.html").write_text(renderer.models(top, observed), encoding="utf-8")
    for ref, entry in observed.models.items():
        (out / "models" / model_file(ref)).write_text(renderer.model(below, entry, observed), encoding="utf-8")
    assets = resources.files("featurehouse.ui") / "static"
    for asset in ASSETS:
        with resources.as_file(assets / asset) as path:
            shutil.copyfile(path, out / "static" / asset)
    # a script, not JSON: a page opened from disk may not fetch() a file beside it, but may load a script
    (out / "static" / "search-index.js").write_text(
        "window.FH_INDEX = " + json.dumps(index.search_index(), ensure_ascii=False) + ";\n", encoding="utf-8")
    return pages + 3 + len(index.views) + len(observed.models)
