"""`featurehouse docs generate`: the web catalog as a static site."""

from __future__ import annotations

from pathlib import Path

import click

from featurehouse.cli.context import CliContext


@click.group()
def docs() -> None:
    """The feature catalog as a website (also served live by `featurehouse serve` at /ui)."""


@docs.command("generate")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The folder to write the site into (made if missing); open its index.html from disk.")
@click.option("--no-health", is_flag=True, help="Leave out freshness (no warehouse or online store is read for it).")
@click.pass_obj
def generate(obj: CliContext, out: Path, no_health: bool) -> None:
    """Write the catalog (every view and feature, search, freshness as of now) as static files, like
    `dbt docs generate`: publish the folder from CI, or open it from disk."""
    from featurehouse.clock import utc_now
    from featurehouse.errors import FeaturehouseError
    from featurehouse.ui.catalog import CatalogIndex
    from featurehouse.ui.export import export_site
    from featurehouse.ui.health import from_check

    store = obj.store()
    registry = store.registry
    index = CatalogIndex(registry)
    as_of = utc_now().strftime("%Y-%m-%d %H:%M UTC")
    panels = {}
    if not no_health:
        with obj.console.status("checking freshness (the warehouse and the online store)"):
            rows = store.freshness()
        panels = {r.view: from_check(r, as_of) for r in rows if r.view in index.views}
    project = store.project.name if store.project is not None else ""
    try:
        written = export_site(index, out, panels, project, as_of)
    except OSError as e:
        raise FeaturehouseError(f"--out {out}: cannot write the site there: {e.strerror or e}") from None
    obj.console.print(f"wrote {written} pages ({len(index.views)} views, {index.feature_count} features) to {out}; "
                      f"open {out / 'index.html'}", markup=False, highlight=False)
