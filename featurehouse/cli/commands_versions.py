"""`featurehouse backfill` and `featurehouse promote`: new versions beside the active one, then a switch."""

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
