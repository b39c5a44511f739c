"""Batch sync: the latest row per entity of each online view, from the warehouse to the online store."""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import redis

from featurehouse.clock import EPOCH, epoch_seconds, naive_utc_value, utc_now
from featurehouse.offline.point_in_time import view_sources
from featurehouse.offline.warehouse import Warehouse
from featurehouse.online.codec import encode_rows
from featurehouse.online.keys import entity_keys, mark_behind
from featurehouse.online.store import OnlineStore, WriteResult
from featurehouse.registry.model import FeatureView, Relation
from featurehouse.sync.forget import Tombstones
from featurehouse.sync.latest import latest_values_sql, max_created_at_sql
from featurehouse.sync.runs import SyncRun, SyncRunLog

logger = logging.getLogger(__name__)

# progress(view, rows_done, rows_total)
Progress = Callable[[str, int, int], None]
WRITERS = 2  # threads writing a sync's batches to the online store at once


@dataclass(frozen=True)
class SyncPolicy:
    """How incremental syncs bound what they read (docs/online-store.md, "Late rows and reconciliation").

    A row may land in the warehouse after rows with a later created_at (a dbt build that runs late,
    an upstream loader catching up): each source's watermark stays `late_arrival` behind the clock, so
    such a row is still read by the next run. A row later than that is caught by a reconciliation: a
    run reading every row, at least every `reconcile_every` (None: only when asked, `--full-refresh`).
    """

    late_arrival: timedelta = timedelta(hours=1)
    reconcile_every: timedelta | None = timedelta(days=1)


@dataclass
class SyncPlan:
    view: FeatureView
    version: int
    mode: str  # full | incremental | reconcile | repair (and restate/backfill, set by the caller)
    watermark_from: datetime | None  # created_at bounds, or dbt build times of a view without created_at
    watermark_to: datetime | None
    read_after: dict[Relation, datetime] = field(default_factory=dict)  # per source; absent: read it whole
    next_watermarks: dict[str, datetime | None] = field(default_factory=dict)  # recorded for the next run
    nothing_new: bool = False  # incremental, and no source received a row since its watermark


def source_name(relation: Relation) -> str:
    """How a source is named in the sync run log's watermarks."""
    return ".".join(relation.parts())


def plan_sync(warehouse: Warehouse, log: SyncRunLog, view: FeatureView, version: int | None = None,
              full_refresh: bool = False, rebuilt_at: datetime | None = None,
              policy: SyncPolicy = SyncPolicy(), now: datetime | None = None,
              online_store: str | None = None) -> SyncPlan:
    """Incremental from each source's own watermark on created_at; every row when asked, when the
    view never synced, or when the last full read is older than `policy.reconcile_every`.

    A view without created_at is read whole, unless dbt has not rebuilt it (`rebuilt_at`, from
    run_results.json) since the last successful sync: then there is nothing new to read.
    """
    version = view.version if version is None else version
    now = now or utc_now()
    last = None if full_refresh else log.last_success(view.name, version, online_store)
    if not view.created_at:
        done = last.watermark_to if last is not None else None
        if rebuilt_at is not None and done is not None and rebuilt_at <= done:
            return SyncPlan(view, version, "incremental", done, rebuilt_at, nothing_new=True)
        return SyncPlan(view, version, "full", None, rebuilt_at)
    mode = "full" if last is None else "incremental"
    if mode == "incremental" and policy.reconcile_every is not None:
        full_read = log.last_full_read(view.name, version, online_store)
        if full_read is None or full_read < now - policy.reconcile_every:
            mode = "reconcile"
    read_after: dict[Relation, datetime] = {}
    next_watermarks: dict[str, datetime | None] = {}
    newest: dict[Relation, datetime | None] = {}
    for source in view_sources(view):
        name = source_name(source)
        upper = warehouse.fetch_arrow(max_created_at_sql(view, source, warehouse.dialect)).column(0)[0].as_py()
        newest[source] = upper = naive_utc_value(upper)  # a TIMESTAMPTZ created_at comes aware
        lower = (last.watermarks or {}).get(name) if last is not None and mode == "incremental" else None
        if lower is not None:
            read_after[source] = lower
        # never ahead of what the warehouse can still receive: late_arrival behind the clock
        next_watermarks[name] = min(upper, now - policy.late_arrival) if upper is not None else lower
    every_source_bounded = mode == "incremental" and len(read_after) == len(newest)
    nothing_new = every_source_bounded and all(
        upper is None or upper <= read_after[source] for source, upper in newest.items())
    seen = [v for v in newest.values() if v is not None]
    return SyncPlan(view, version, mode, min(read_after.values()) if every_source_bounded else None,
                    max(seen) if seen else None, read_after, next_watermarks, nothing_new)


def sync_view(warehouse: Warehouse, online: OnlineStore, log: SyncRunLog, view: FeatureView,
              version: int | None = None, full_refresh: bool = False, batch_size: int = 5000,
              progress: Progress | None = None, event_time_from=None, event_time_until=None,
              mode: str | None = None, rebuilt_at: datetime | None = None, restate: bool = False,
              policy: SyncPolicy = SyncPolicy()) -> SyncRun:
    """One view (at one version) from the warehouse to the online store, recorded in the sync run log.

    An online store that never saw a successful sync of this view (a new or wiped Redis) gets a full
    sync, whatever the warehouse's watermark says; so does one that is behind the warehouse's log (a
    restored snapshot, a lagging replica promoted, the last second of an append-only file lost): its
    "synced" mark is older than the last successful run, mode `repair`. `restate` (a declared
    correction of this version) reads every row again and replaces stored values whose payload
    differs at an equal event time and created_at, counted in the run's rows_restated.

    Whatever the mode, rows of forgotten entities (tombstoned by `featurehouse forget`, and entities
    keyed by one) are never written (featurehouse/sync/forget.py); an entity forgotten while the run
    wrote is deleted again at its end.
    """
    target_version = view.version if version is None else version
    full_refresh = full_refresh or restate
    store = online.store_id()  # the run log is kept per online store
    marked = online.last_synced(view.name, target_version)
    if marked is None:
        full_refresh = True  # a new or wiped online store
    repair = None if full_refresh or marked is None else behind_log(log, view.name, target_version, store, marked)
    plan = plan_sync(warehouse, log, view, version, full_refresh or repair is not None, rebuilt_at, policy,
                     online_store=store)
    layout = online.layout_for_write(view, plan.version)  # recorded before anything is written under it
    run_mode = mode or ("restate" if restate else "repair" if repair is not None else plan.mode)
    run = log.start(view.name, plan.version, run_mode, plan.watermark_from, plan.watermark_to,
                    logic_ref=view.logic_ref, watermarks=plan.next_watermarks, online_store=store)
    if repair is not None:
        run.warning, run.repaired_since = repair.reason, repair.since
    try:
        if not plan.nothing_new:  # else nothing was ingested since the last run
            tombstones = Tombstones.load(log.catalog, online)  # the online store's mirror made whole too
            _copy(warehouse, online, view, plan, layout.columns, run, batch_size, progress,
                  event_time_from, event_time_until, restate, tombstones)
            tombstones.forget_late(online, view)
        # the online store first, then the log, with one instant: a store whose mark is older than the
        # log's last success lost writes (behind_log); a crash in between only leaves a run unfinished
        finished = utc_now()
        online.mark_synced(run.view, run.version, epoch_seconds(finished))
    except BaseException as e:  # recorded, then raised: KeyboardInterrupt too
        log.finish(run, "failed", f"{type(e).__name__}: {e}"[:2000])
        raise
    log.finish(run, "success", at=finished)
    _sample_lag(online, run.view, run.version, epoch_seconds(finished), marked)
    return run


def _sample_lag(online: OnlineStore, view: str, version: int, finished: float, marked: float | None) -> None:
    """A point of the view's lag history (the catalog's sparkline): the lag just before this sync (since the
    last one) and none after. Bookkeeping after the run is recorded: a store that refuses it costs the
    picture a point, never the run."""
    try:
        online.record_lag_sample(view, version, finished, None if marked is None else finished - marked, 0.0)
    except redis.RedisError as e:
        logger.warning("sync of %s@%s: its lag sample was not recorded (%s)", view, version, e)


def _copy(warehouse: Warehouse, online: OnlineStore, view: FeatureView, plan: SyncPlan, columns: tuple[str, ...],
          run: SyncRun, batch_size: int, progress: Progress | None, event_time_from, event_time_until,
          restate: bool, tombstones: Tombstones | None = None) -> None:
    """The plan's rows, deduplicated in the warehouse, into the online store through the write guard;
    rows of forgotten entities are left out (read, not written)."""
    read_after = plan.read_after if view.created_at and plan.mode == "incremental" else None
    parts = read_parts(warehouse, view)
    estimate = 0  # rows the whole read will give, estimated from the parts read so far (for progress)
    newest = None  # the newest event time read

    def write(items: list) -> WriteResult:
        return online.write_encoded(view, items, version=plan.version, batch_size=500, restate=restate)

    def count(finished: tuple[Future, int]) -> None:
        """A batch's outcome into the run (on this thread only: the writers share nothing)."""
        result = finished[0].result()
        run.rows_written += result.written
        run.rows_skipped_older += result.skipped_older
        run.rows_restated += result.restated
        if progress:
            progress(view.versioned_name, finished[1], max(estimate, finished[1]))

    # Encoding (Python) and writing overlap: two writer threads, each on a connection of its own, so
    # one packs its next call while Redis runs the other's (1.2x one writer; encoding and one writer
    # in turn were 1.3x slower again), at most three batches encoded ahead; the next part's query runs
    # while the writers work. Batches and parts hold distinct entities, so the order they land in does
    # not matter. (Streaming one result from DuckDB instead of fetching it whole was measured too: no
    # lower peak memory, which is the window's own, and no faster; parts are what lower it.)
    def fetch(index: int) -> pa.Table:
        return warehouse.fetch_arrow(latest_values_sql(view, warehouse.dialect, read_after, event_time_from,
                                                       event_time_until, part=(index, parts) if parts > 1 else None))

    with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="featurehouse-sync-writer") as writer, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="featurehouse-sync-reader") as reader:
        pending: deque[tuple[Future, int]] = deque()
        coming: Future | None = None
        try:
            for index in range(parts):
                table = (coming.result() if coming is not None else fetch(index))
                # the next part's query runs (in DuckDB's threads, without the GIL) while this one is written
                coming = reader.submit(fetch, index + 1) if index + 1 < parts else None
                before = run.rows_read
                run.rows_read += table.num_rows
                if table.num_rows:
                    part_newest = pc.call_function("max", [table.column(len(view.entity.keys))]).as_py()  # __fh_event_time
                    newest = part_newest if newest is None or part_newest > newest else newest
                estimate = max(run.rows_read, run.rows_read * parts // (index + 1))
                if table.num_rows and not before:  # before the first write (serving's `unverified`: reader.py)
                    online.mark_writing(view.name, plan.version, epoch_seconds(utc_now()))
                for done, batch in _batches(table, batch_size):
                    keep = tombstones.keep(view, batch) if tombstones is not None else None
                    if keep is not None:
                        batch = batch.filter(keep)
                    items = encode_batch(view, batch, columns)
                    while len(pending) > WRITERS:
                        count(pending.popleft())
                    pending.append((writer.submit(write, items), before + done))
                del table
            while pending:
                count(pending.popleft())
            if newest is not None:  # what serving can tell of the data's age without the warehouse
                online.mark_newest_event(view.name, plan.version, epoch_seconds(naive_utc_value(newest)))
        except BaseException:
            for future, _ in pending:
                future.cancel()
            if coming is not None:
                coming.cancel()
            raise
    if progress and not run.rows_read:
        progress(view.versioned_name, 0, 0)


ROWS_PER_PART = 125_000  # a DuckDB sync's window holds at most about this many source rows at once


def read_parts(warehouse: Warehouse, view: FeatureView) -> int:
    """In how many parts (by key hash) a sync reads the view's latest values. On DuckDB, which runs in
    this process, the ranking window holds every source row it ranks: a table of 10M rows would take
    gigabytes at once, and in parts it takes a tenth of that per part (measured: bench/sync.py). A
    dbt view is read whole (in parts it would be computed once per part); other engines rank in their
    own servers."""
    if warehouse.dialect != "duckdb":
        return 1
    rows = warehouse.estimated_rows(view_sources(view))
    return 1 if not rows else max(1, min(MAX_PARTS, -(-rows // ROWS_PER_PART)))


MAX_PARTS = 64


@dataclass(frozen=True)
class Behind:
    """An online store behind the warehouse's sync log: its mark of a view's last sync, and the log's."""

    view: str
    marked_s: float  # epoch seconds
    logged_s: float

    @property
    def since(self) -> datetime:
        """The state the store went back to: what happened after it (writes, deletions) is gone."""
        return EPOCH + timedelta(seconds=self.marked_s)

    @property
    def reason(self) -> str:
        return (f"{self.view}: the online store is behind the warehouse's sync log (it last saw a sync finish at "
                f"{_utc(self.marked_s)}, the log records one at {_utc(self.logged_s)}): restored from an older state "
                "or lost writes; repaired with a full read")


def behind_log(log: SyncRunLog, view: str, version: int, store: str, marked: float) -> Behind | None:
    """Whether the online store cannot be trusted to hold this view version's last sync (None: it can).

    Sync marks the online store with the finish time of each successful run before the warehouse's
    log records it; Redis keeps writes in order (append-only file, RDB snapshot, replication), so a
    mark older than the log's means writes the log counts on are gone. `marked` is the online store's
    mark of the view version's last sync (a store without one is read whole anyway, not "behind")."""
    last = log.last_success(view, version, store)
    if last is None or last.finished_at is None:
        return None
    logged = epoch_seconds(last.finished_at)
    return Behind(f"{view}@{version}", marked, logged) if mark_behind(marked, logged) else None


def _utc(seconds: float) -> str:
    return (EPOCH + timedelta(seconds=seconds)).isoformat(sep=" ", timespec="seconds") + " UTC"


def _batches(table: pa.Table, size: int) -> Iterator[tuple[int, pa.Table]]:
    for start in range(0, table.num_rows, size):
        batch = table.slice(start, size)
        yield start + batch.num_rows, batch


def encode_batch(view: FeatureView, batch: pa.Table, columns: tuple[str, ...] | None = None
                 ) -> list[tuple[str, int, int | None, bytes]]:
    """Latest-value rows (keys, event time, created_at, features) as the online store's items, each
    array in the order of `columns` (the store's recorded layout), taken by name from the batch.

    Timestamps become microseconds in Arrow, without Python datetimes: most of a sync's Python time.
    """
    import pyarrow.compute as pc

    nkeys = len(view.entity.keys)
    keys = entity_keys(view.entity.name, [batch.column(i) for i in range(nkeys)])
    micros = [pc.cast(pc.cast(batch.column(nkeys + j), pa.timestamp("us")), pa.int64()).to_pylist() for j in (0, 1)]
    values = [batch.column(c).to_pylist() for c in (columns or view.feature_columns)]
    payloads = encode_rows(zip(*values) if values else [()] * batch.num_rows)
    return list(zip(keys, micros[0], micros[1], payloads))
