"""`featurehouse sync`: the warehouse's latest values into the online store."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from featurehouse.cli.context import CliContext


@click.command()
@click.option("--select", "-s", multiple=True, help="Only these views (repeatable; `view` or `view@N`).")
@click.option("--full-refresh", is_flag=True, help="Ignore the watermark: read the latest row of every entity again.")
@click.option("--restate", multiple=True, metavar="VIEW",
              help="Correct VIEW's stored values in place (repeatable): values that differ at an equal event time "
                   "and created_at are rewritten. For a deliberate fix of a published version; the seed of any "
                   "other logic change is a new version (`backfill`, then `promote`).")
@click.pass_obj
def sync(obj: CliContext, select: tuple[str, ...], full_refresh: bool, restate: tuple[str, ...]) -> None:
    """Push the latest value per entity of every online view to the online store.

    Incremental: each source (the model, its pushed rows) is read from its own watermark on
    created_at, kept vars.featurehouse.late_arrival (1h) behind the clock so rows landing late are
    still read; every vars.featurehouse.reconcile_every (1d) a run reads everything. An online store
    behind the warehouse's sync log (restored from an older state) is repaired by a full read. The
    warehouse deduplicates to one row per entity. Writes are guarded inside Redis, so an older
    event never replaces a newer value and a re-run changes nothing. Every run is recorded in the
    warehouse table featurehouse_sync_runs (in vars.featurehouse.schema, default featurehouse). The
    online store is FEATUREHOUSE_REDIS_URL,
    or an embedded Redis under <project>/.featurehouse/redis. A view declaring
    `meta.featurehouse.restatement: <reason>` is restated once after its SQL changed.
    """
    store = obj.store()
    views = store.online_views(select)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=obj.console, transient=True) as bar:
        tasks = {v.versioned_name: bar.add_task(v.versioned_name, total=None) for v in views}

        def progress(name: str, done: int, total: int) -> None:
            bar.update(tasks[name], completed=done, total=total)

        runs = store.sync(select, full_refresh=full_refresh, progress=progress, restate=restate)
    table = Table(title=f"sync: {len(runs)} views", title_justify="left")
    numbers = ("rows read", "written", "restated", "skipped (not newer)", "seconds")
    for col in ("view", "mode", "rows read", "written", "restated", "skipped (not newer)", "watermark", "seconds", "status"):
        table.add_column(col, justify="right" if col in numbers else "left")
    for run in runs:
        seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0
        table.add_row(f"{run.view}@{run.version}", run.mode, f"{run.rows_read:,}", f"{run.rows_written:,}",
                      f"{run.rows_restated:,}", f"{run.rows_skipped_older:,}", str(run.watermark_to or "-"),
                      f"{seconds:.2f}", run.status)
    obj.console.print(table)
    for run in runs:
        if run.warning:
            obj.console.print(f"[yellow]![/yellow] {run.warning}")


@click.command()
@click.argument("entity_type")
@click.argument("keys", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def forget(obj: CliContext, entity_type: str, keys: tuple[str, ...], yes: bool) -> None:
    """Delete entities everywhere: their online values and their rows in PII views' relations.

    KEY is the entity's key value (`42`), or `col=value;col=value` for composite keys. Online, entity
    types keyed by it go too (forgetting user 42 removes user_item 42|*). Each deletion is recorded in
    featurehouse.featurehouse_deletions. Rows come back if a PII model is rebuilt from sources that
    still hold them: delete upstream as well. A key that deletes nothing (`03` for user 3) is an
    error (exit 2) naming it, and the spelling that would match if there is one.
    """
    from featurehouse.registry.model import parse_entity_key

    store = obj.store()
    if entity_type not in store.registry.entities:
        from featurehouse.errors import UnknownEntity

        raise UnknownEntity(f"unknown entity '{entity_type}' (declared: {', '.join(sorted(store.registry.entities))})")
    from featurehouse.sync.forget import nothing_matched

    parsed = [parse_entity_key(store.registry.entities[entity_type], k) for k in keys]
    if not yes:
        click.confirm(f"forget {len(parsed)} {entity_type} entit{'y' if len(parsed) == 1 else 'ies'}?", abort=True)
    results = [store.forget(entity_type, key) for key in parsed]
    done = [r for r in results if not r.deleted_nothing]
    if done:
        table = Table(title=f"forgot {len(done)} {entity_type}", title_justify="left")
        for col in ("key", "online keys deleted", "offline rows deleted"):
            table.add_column(col)
        for result in done:
            table.add_row("|".join(result.key), str(result.online_keys_deleted),
                          ", ".join(f"{v}: {n}" for v, n in result.offline_rows_deleted.items()) or "-")
        obj.console.print(table)
    missed = [(text, r.key) for text, r in zip(keys, results) if r.deleted_nothing]
    if missed:  # a key written differently must not pass for a completed deletion
        raise nothing_matched(store.warehouse, store.online, store.registry, entity_type, missed)


@click.command()
@click.pass_obj
def retention(obj: CliContext) -> None:
    """Remove online values older than their view's TTL (serving never serves them as fresh anyway)."""
    removed = obj.store().retention()
    table = Table(title="retention pass", title_justify="left")
    table.add_column("view")
    table.add_column("values removed", justify="right")
    for view, n in sorted(removed.items()):
        table.add_row(view, f"{n:,}")
    obj.console.print(table)
