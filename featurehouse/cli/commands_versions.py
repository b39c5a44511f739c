"""`featurehouse backfill` and `featurehouse promote`: new versions beside the active one, then a switch;
`featurehouse versions`: every version of a view and when each was active."""

from __future__ import annotations

from datetime import datetime

import click

from featurehouse.cli.context import CliContext
from featurehouse.errors import FeaturehouseError


def _when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise FeaturehouseError(f"{flag} {value!r}: use an ISO timestamp such as 2026-05-01 or 2026-05-01T12:00") from None


@click.command()
@click.argument("view")
@click.option("--version", "version", type=int, required=True, help="The version to build (not the active one).")
@click.option("--start", default=None, help="Replay only rows with event_time >= this (ISO timestamp, UTC).")
@click.option("--end", default=None, help="Replay only rows with event_time <= this (ISO timestamp, UTC).")
@click.pass_obj
def backfill(obj: CliContext, view: str, version: int, start: str | None, end: str | None) -> None:
    """Build VIEW at --version N into its own relation and online namespace.

    The active version keeps serving, untouched. Check the new version, then `featurehouse promote VIEW@N`.
    """
    store = obj.store()
    with obj.console.status(f"backfilling {view}@{version}"):
        run = store.backfill(view, version, _when(start, "--start"), _when(end, "--end"))
    obj.console.print(f"[green]✓[/green] {view}@{version}: {run.rows_read:,} entities replayed, {run.rows_written:,} "
                      f"written to its own namespace; active stays {view}@{store.registry.active_version(view)}")


@click.command()
@click.argument("view_at_version", metavar="VIEW@N")
@click.pass_obj
def promote(obj: CliContext, view_at_version: str) -> None:
    """Make VIEW@N the active version, for serving and for unpinned training features.

    Switches the registry's record and the online store's pointer. Promoting the previous version is
    the rollback.
    """
    name, _, version = view_at_version.partition("@")
    if not version.isdigit():
        raise FeaturehouseError(f"'{view_at_version}': write VIEW@N, e.g. user_txn_stats@2")
    previous = obj.store().promote(name, int(version))
    was = f"{name}@{previous}" if previous is not None else "nothing promoted before"
    obj.console.print(f"[green]✓[/green] {name}@{version} is active (was {was}); "
                      f"rollback: featurehouse promote {name}@{previous or ''}".rstrip("@"))


@click.command()
@click.argument("view")
@click.option("--json", "as_json", is_flag=True, help="Print the versions and the promote history as JSON.")
@click.pass_obj
def versions(obj: CliContext, view: str, as_json: bool) -> None:
    """Every version of VIEW the project declares (its features and types, which is active) and the promote
    history the warehouse keeps: which version was active from when until when."""
    import json

    from rich.table import Table

    from featurehouse.catalog import VIEW_VERSIONS
    from featurehouse.offline.versions import VersionLog

    store = obj.store()
    registry = store.registry
    active = registry.view(view).version  # an unknown view: the registry's error names the views it knows
    declared = [registry.view(view, v) for v in sorted(registry.versions(view))]
    history = VersionLog(store.catalog).history(view) if store.catalog.exists(VIEW_VERSIONS) else []
    if as_json:
        click.echo(json.dumps({
            "view": view, "active": active,
            "versions": [{"version": v.version, "features": {f.column: f.data_type for f in v.features},
                          "sensitivity": v.sensitivity} for v in declared],
            "promotions": [{"version": p.version, "active_from": p.active_from.isoformat(),
                            "active_until": p.active_until.isoformat() if p.active_until else None,
                            "transform_ref": p.transform_ref} for p in history]}, indent=2))
        return
    table = Table(title=f"{view}: versions", title_justify="left")
    for column in ("version", "state", "features"):
        table.add_column(column)
    ever = {p.version for p in history}
    for v in reversed(declared):
        state = ("active" if v.version == active else "candidate (never active)" if v.version not in ever
                 else "earlier")
        table.add_row(str(v.version), state, ", ".join(f"{f.column} {f.data_type or ''}".strip() for f in v.features))
    obj.console.print(table)
    if not history:
        obj.console.print(f"never promoted: {view}@{active} is active as the project declares it", markup=False)
        return
    table = Table(title=f"{view}: promote history", title_justify="left")
    for column in ("version", "active from (UTC)", "until (UTC)"):
        table.add_column(column)
    for p in reversed(history):
        table.add_row(str(p.version), f"{p.active_from:%Y-%m-%d %H:%M:%S}",
                      f"{p.active_until:%Y-%m-%d %H:%M:%S}" if p.active_until else "now")
    obj.console.print(table)
