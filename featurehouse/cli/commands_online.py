"""`featurehouse sync`: the warehouse's latest values into the online store."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from featurehouse.cli.context import CliContext

QUIET_AFTER = 50  # past this many views, sync's table lists only views that read rows or need a look


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
        bar.add_task(f"{len(views)} online view{'s' if len(views) != 1 else ''}", total=None)
        tasks: dict = {}  # a bar per view that has rows to write, made when it starts (200 idle bars cost 1 s)

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks and not total:
                return  # a view with nothing to write gets no bar
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        runs = store.sync(select, full_refresh=full_refresh, progress=progress, restate=restate)
    shown = runs
    if len(runs) > QUIET_AFTER:  # many views: list those that read, wrote or went wrong; count the idle ones
        shown = [r for r in runs if r.rows_read or r.status != "success" or r.warning or r.mode != "incremental"]
    idle = len(runs) - len(shown)
    table = Table(title=f"sync: {len(runs)} views" + (f" ({idle} with nothing new not listed)" if idle else ""),
                  title_justify="left")
    numbers = ("rows read", "written", "restated", "skipped (not newer)", "seconds")
    for col in ("view", "mode", "rows read", "written", "restated", "skipped (not newer)", "watermark", "seconds", "status"):
        table.add_column(col, justify="right" if col in numbers else "left")
    if not shown:
        obj.console.print(f"sync: {len(runs)} views, nothing new in any; every run recorded as a success")
    for run in shown:
        seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0
        table.add_row(f"{run.view}@{run.version}", run.mode, f"{run.rows_read:,}", f"{run.rows_written:,}",
                      f"{run.rows_restated:,}", f"{run.rows_skipped_older:,}", str(run.watermark_to or "-"),
                      f"{seconds:.2f}", run.status)
    if shown:
        obj.console.print(table)
    for run in runs:
        if run.warning:
            obj.console.print(f"[yellow]![/yellow] {run.warning}")


@click.command()
@click.argument("entity_type")
@click.argument("keys", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--status", is_flag=True, help="Delete nothing: say where each entity still is, and whether its tombstone "
                                               "can be lifted.")
@click.option("--lift", is_flag=True, help="Lift each entity's tombstone, if nothing that could bring it back holds it "
                                             "any more (else exit 2 naming what does).")
@click.pass_obj
def forget(obj: CliContext, entity_type: str, keys: tuple[str, ...], yes: bool, status: bool, lift: bool) -> None:
    """Delete entities everywhere, and keep them out until their sources forgot too.

    KEY is the entity's key value (`42`), or `col=value;col=value` for composite keys. Deleted: online
    values, of entity types keyed by it too (forgetting user 42 removes user_item 42|*); rows in PII
    views' relations and in every view's landing table (pushed rows); its entries in the push streams,
    dead letters and served-vector log (featurehouse_served_values and fh:served). Each deletion is
    recorded in featurehouse.featurehouse_deletions. A key that deletes nothing (`03` for user 3) is an
    error (exit 2) naming it, and the spelling that would match if there is one.

    A tombstone (featurehouse_tombstones, mirrored in the online store) stays: sync leaves the entity
    out of every view, and the stream consumer drops its pushes (accepted, then dropped). Rows come
    back in a model rebuilt from sources that still hold them, so delete upstream as well; `--status`
    says where the entity still is, `--lift` lifts the tombstone once no view's relation or landing
    table, push stream or online hash holds it. Nothing lifts it automatically.
    """
    from featurehouse.errors import FeaturehouseError
    from featurehouse.registry.model import parse_entity_key

    store = obj.store()
    if entity_type not in store.registry.entities:
        from featurehouse.errors import UnknownEntity

        raise UnknownEntity(f"unknown entity '{entity_type}' (declared: {', '.join(sorted(store.registry.entities))})")
    if status and lift:
        raise FeaturehouseError("forget: give --status or --lift, not both")
    from featurehouse.sync.forget import nothing_matched

    parsed = [parse_entity_key(store.registry.entities[entity_type], k) for k in keys]
    if status or lift:
        for text, key in zip(keys, parsed):
            _print_status(obj, entity_type, text, store.forget_status(entity_type, key, lift=lift), lift)
        return
    if not yes:
        click.confirm(f"forget {len(parsed)} {entity_type} entit{'y' if len(parsed) == 1 else 'ies'}?", abort=True)
    results = [store.forget(entity_type, key) for key in parsed]
    done = [r for r in results if not r.matched_nothing]
    if done:
        table = Table(title=f"forgot {len(done)} {entity_type}", title_justify="left")
        for col in ("key", "online keys deleted", "offline rows deleted", "stream entries", "dead letters",
                    "served values"):
            table.add_column(col)
        for result in done:
            table.add_row("|".join(map(str, result.key)), str(result.online_keys_deleted),
                          ", ".join(f"{v}: {n}" for v, n in result.offline_rows_deleted.items()) or "-",
                          str(result.stream_entries_deleted), str(result.dead_letters_deleted),
                          f"{result.served_values_deleted} landed, {result.served_log_entries_deleted} in the log")
        obj.console.print(table)
        for result in done:
            kept = ", ".join(f"{v}: {n}" for v, n in result.offline_rows_kept.items())
            obj.console.print(f"tombstoned {entity_type} {'|'.join(map(str, result.key))}: sync and the stream leave it "
                              "out until `forget --lift`" + (f" (still in views that are not PII: {kept})" if kept else ""))
    missed = [(text, r.key) for text, r in zip(keys, results) if r.matched_nothing]
    if missed:  # a key written differently must not pass for a completed deletion
        raise nothing_matched(store.warehouse, store.online, store.registry, entity_type, missed, store.catalog)


def _print_status(obj: CliContext, entity_type: str, text: str, status, lifted: bool) -> None:
    """Where the entity still is, one row per place, then the tombstone's state."""
    table = Table(title=f"{entity_type} {text}", title_justify="left")
    # a place "holds" the tombstone when what it still has would bring the entity back were the tombstone lifted
    for col in ("place", "where", "rows or entries", "would bring it back (blocks --lift)"):
        table.add_column(col)
    for place in status.places:
        table.add_row(place.kind, place.where, "unreadable" if place.count is None else str(place.count),
                      "yes" if place.holds_back else "no")
    obj.console.print(table)
    if lifted:
        obj.console.print(f"tombstone lifted: {entity_type} {text} is synced and streamed again")
    elif status.forgotten_at is None:
        obj.console.print(f"tombstone: none ({entity_type} {text} is not forgotten)")
    elif status.liftable:
        obj.console.print(f"tombstone: since {status.forgotten_at:%Y-%m-%d %H:%M:%S} UTC; can be lifted "
                          f"(`featurehouse forget --lift {entity_type} {text}`)")
    else:
        held = "; ".join(f"{p.kind} {p.where}" for p in status.holding)
        obj.console.print(f"tombstone: since {status.forgotten_at:%Y-%m-%d %H:%M:%S} UTC; cannot be lifted yet, "
                          f"held by: {held}")


@click.command()
@click.option("--dry-run", is_flag=True, help="Delete nothing: count what the pass would remove.")
@click.pass_obj
def retention(obj: CliContext, dry_run: bool) -> None:
    """Remove what featurehouse keeps past its time: online values and its own offline copies.

    Online: values older than their view's TTL (serving never serves them as fresh anyway). Offline,
    for a view with `meta.featurehouse.retention` (e.g. 400d; `vars.featurehouse.retention` for views
    without one): rows of its stream landing table whose event time is older, its served values in
    featurehouse_served_values served before then, and its features' profiles in training sets
    recorded before then (the record, its lineage and spine fingerprint stay). Audit events in
    featurehouse_audit older than `vars.featurehouse.audit_retention`. Never deleted: the view's own
    relation (the dbt model) and the upstream sources it is built from; delete there yourself.
    """
    from featurehouse.durations import format_duration

    report = obj.store().retention(dry_run=dry_run)
    offline = report.offline
    verb = "would be removed" if dry_run else "removed"
    table = Table(title="retention pass" + (" (dry run: what would be removed; nothing deleted)" if dry_run else
                                            ": removed"), title_justify="left")
    table.add_column("view")
    table.add_column("offline retention")
    for col in ("online values (past TTL)", "landing rows", "served values", "training-set profiles trimmed"):
        table.add_column(col, justify="right")
    for view in sorted(set(report) | set(offline.views)):
        kept = offline.views.get(view)
        table.add_row(view, format_duration(kept.retention) if kept else "none (kept)",
                      f"{report[view]:,}" if view in report else "-",
                      *((f"{kept.landing_rows:,}", f"{kept.served_values:,}", f"{kept.profiles_trimmed:,}")
                        if kept else ("-", "-", "-")))
    obj.console.print(table)
    if offline.audit_retention is None:
        obj.console.print("audit events: kept (no vars.featurehouse.audit_retention)")
    else:
        obj.console.print(f"audit events older than {format_duration(offline.audit_retention)}: "
                          f"{offline.audit_rows:,} {verb}")
