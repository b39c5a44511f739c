"""`featurehouse docs generate`: the web catalog as a static site."""

from __future__ import annotations

import time
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
    panels, observed, history = {}, None, None
    now = time.time()
    if not no_health:
        with obj.console.status("checking freshness (the warehouse and the online store)"):
            rows = store.freshness()
        panels = {r.view: from_check(r, as_of) for r in rows if r.view in index.views}
        with obj.console.status("reading the guards' results, model versions and promote history"):
            observed, history = observations(store)
    project = store.project.name if store.project is not None else ""
    try:
        written = export_site(index, out, panels, project, as_of, observed=observed, history=history, now_s=now)
    except OSError as e:
        raise FeaturehouseError(f"--out {out}: cannot write the site there: {e.strerror or e}") from None
    obj.console.print(f"wrote {written} pages ({len(index.views)} views, {index.feature_count} features) to {out}; "
                      f"open {out / 'index.html'}", markup=False, highlight=False)


def observations(store):
    """What the guards saw (from the online store, as the live catalog reads it), model versions' training
    sets completed from the warehouse's records, and each view's promote history (the warehouse's log)."""
    from featurehouse.catalog import VIEW_VERSIONS
    from featurehouse.offline.lineage import LineageLog
    from featurehouse.offline.versions import VersionLog
    from featurehouse.ui.observed import read_observed, with_training_sets

    observed = read_observed(store.online.client)
    records = {r.training_set_id: r for r in LineageLog(store.catalog).list_training_sets()} if observed.models else {}
    history: dict[str, list] = {}  # read: a view without periods was never promoted
    if store.catalog.exists(VIEW_VERSIONS):
        for period in VersionLog(store.catalog).history():  # one query, every view's
            history.setdefault(period.view, []).append(period)
    return with_training_sets(observed, records), history
