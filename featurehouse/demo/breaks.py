"""`featurehouse demo --break X`: what a breach looks like, made the way it happens in production.

Each function below breaks one thing on the demo's state and returns a `Break`: what happened, the
guard command that catches it (run by `featurehouse demo` as you would run it), and how to repair.

* freshness: the feed stops. The demo's producer and stream consumer stopped when the demo ended;
  `card_txn_stats` promises values at most 15 minutes old, so its guard fires by itself a quarter of
  an hour later. The demo runs `featurehouse freshness` with its clock moved past that instead of
  making you wait (nothing is changed: wait, and the plain command says the same).
* parity: a bad writer. A script writes a value straight into the online store's Redis hash, past
  featurehouse's write guard, at the same event time: the online value no longer equals the
  warehouse's. `featurehouse parity` compares them.
* schema: a published view's column changes type without a new version. The change is made in a
  copy of the project (under `.featurehouse/break-schema/`, sharing the demo's warehouse), so the
  project itself stays as it is; `featurehouse check` on the copy fails.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Iterator

BREAKS = ("freshness", "parity", "schema")
SCHEMA_COPY = Path(".featurehouse") / "break-schema"


@dataclass
class Break:
    what: list[str]  # what happened, a line each
    command: list[str]  # the guard that catches it: `featurehouse <global options> <command>`
    repair: list[str]  # how to repair it, a line each; `{fh}` stands for `featurehouse <the demo's global options>`
    project_dir: Path  # the project the guard runs on
    clock_ahead: timedelta | None = None  # the guard judges as if this much later
    facts: dict = field(default_factory=dict)  # what was broken, for tests and the curious


# -- freshness -------------------------------------------------------------------------------------

FRESHNESS_VIEW = "card_txn_stats"
FRESHNESS_MARGIN = timedelta(minutes=5)


def stop_feeding(store, project_dir: Path) -> Break:
    """The feed is stopped: judge freshness when the tightest streamed view's SLO has run out."""
    view = store.registry.view(FRESHNESS_VIEW)
    slo = view.freshness_slo or timedelta(minutes=15)
    ahead = slo + FRESHNESS_MARGIN
    minutes = int(ahead.total_seconds() // 60)
    return Break(
        what=[f"The feed stopped: the demo's producer and stream consumer stopped when it ended, and nothing "
              f"pushes transactions since. {view.versioned_name} promises values at most {_duration(slo)} old "
              f"(freshness_slo): {_duration(slo)} after its newest event, serving flags its values stale and the "
              "guard fires.",
              f"Rather than make you wait, the demo runs the guard with its clock {minutes} minutes ahead; nothing "
              "was changed, so the plain command says the same once that time has passed."],
        command=["freshness"],
        repair=["Restart the feed: the producer and `featurehouse stream` (its consumer). Here, `{fh} demo` runs both "
                "again. featurehouse cannot make data fresh that stopped upstream; the guard makes sure you know, "
                "and serving marks the values stale meanwhile."],
        project_dir=project_dir, clock_ahead=ahead, facts={"view": view.versioned_name})


@contextlib.contextmanager
def clock_ahead(delta: timedelta | None) -> Iterator[None]:
    """The freshness guard's clock moved `delta` ahead (for `stop_feeding`); nothing else is touched."""
    if delta is None:
        yield
        return
    from featurehouse.guard import freshness

    real = freshness.utc_now
    freshness.utc_now = lambda: real() + delta
    try:
        yield
    finally:
        freshness.utc_now = real


# -- parity ----------------------------------------------------------------------------------------

PARITY_VIEW, PARITY_COLUMN = "user_txn_stats", "txn_count_24h"


def bad_writer(store, project_dir: Path) -> Break:
    """Overwrite one entity's value in Redis directly, keeping its event time, as a script bypassing
    featurehouse would. The entity is the first the parity sample picks, so any --sample catches it."""
    from featurehouse.errors import FeaturehouseError
    from featurehouse.guard.parity import entity_id, sample_sql
    from featurehouse.online.codec import decode_values, encode_values
    from featurehouse.online.keys import entity_key, value_field

    view = store.registry.view(PARITY_VIEW)
    client = store.online.client
    field_name = value_field(view.name, view.version)
    layout = store.online.layouts().get(field_name)
    index = layout.index(PARITY_COLUMN) if layout is not None else None
    if index is None:
        raise FeaturehouseError(f"{view.versioned_name} holds no {PARITY_COLUMN} online: run `featurehouse demo` first")
    rows = store.warehouse.fetch_arrow(sample_sql(view, store.warehouse.dialect, 50)).to_pylist()
    for row in rows:
        key = tuple(row[k] for k in view.entity.keys)
        payload = client.hget(entity_key(view.entity.name, key), field_name)
        if payload is not None:
            break
    else:
        raise FeaturehouseError(f"no entity of {view.versioned_name} is online: run `featurehouse demo` first")
    values = list(decode_values(payload))
    good = values[index]
    bad = (good or 0) * 10 + 10
    values[index] = bad
    client.hset(entity_key(view.entity.name, key), field_name, encode_values(values))
    who = entity_id(view, key)
    return Break(
        what=[f"A bad writer: a backfill script that writes to Redis directly, past featurehouse's write guard, "
              f"stored {view.entity.name} {who}'s {view.versioned_name} with {PARITY_COLUMN} = {bad} (the warehouse "
              f"says {good}), keeping the event time. Serving now returns {bad}; training saw {good}.",
              f"(What it did: HSET {entity_key(view.entity.name, key)} {field_name} <values with {PARITY_COLUMN} "
              f"{bad}>.)"],
        command=["parity"],
        repair=[f"`{{fh}} sync --restate {view.name}` writes the warehouse's values again where the online "
                "store holds another value at the same event time (a plain sync skips them: equal event times are "
                "repeats). Then find the writer: only sync, the stream consumer and backfill should write there "
                "(`featurehouse online acl` gives them their own Redis users).",
                "`{fh} demo` starts everything over."],
        project_dir=project_dir,
        facts={"view": view.versioned_name, "entity": who, "column": PARITY_COLUMN, "good": good, "bad": bad})


# -- schema ----------------------------------------------------------------------------------------

SCHEMA_VIEW, SCHEMA_COLUMN = "card_txn_stats", "seconds_since_previous_txn"
SCHEMA_FROM = "{{ seconds_between('previous_at', 'event_time') }} as seconds_since_previous_txn"
SCHEMA_TO = "cast({{ seconds_between('previous_at', 'event_time') }} as bigint) as seconds_since_previous_txn"


def schema_change(store, project_dir: Path) -> Break:
    """A copy of the project whose card_txn_stats model yields whole seconds (BIGINT) where version 1 was
    published as DOUBLE, sharing the demo's warehouse (and so its record of published schemas)."""
    from featurehouse.errors import FeaturehouseError

    view = store.registry.view(SCHEMA_VIEW)
    copy = make_copy(project_dir)
    model = copy / (view.original_file_path or f"models/features/{SCHEMA_VIEW}.sql")
    sql = model.read_text(encoding="utf-8")
    if SCHEMA_FROM not in sql:
        raise FeaturehouseError(f"{model}: expected `{SCHEMA_FROM}` in it; the example changed, and this break with it")
    model.write_text(sql.replace(SCHEMA_FROM, SCHEMA_TO), encoding="utf-8")
    relative = model.relative_to(copy)
    return Break(
        what=[f"A schema change: someone makes {view.name}.{SCHEMA_COLUMN} whole seconds, in place - "
              f"`cast(... as bigint)` around the seconds, a double, in {relative} - without a new version. "
              f"{view.versioned_name} is published (synced, trained on): its values online are arrays of DOUBLEs, "
              "and fraud_model@1 was trained on a DOUBLE.",
              f"The change is made in a copy of the project, {copy} (it shares the demo's warehouse); your "
              "project is untouched. CI runs the guard before `dbt build` deploys anything."],
        command=["check"],
        repair=[f"Revert the change. To ship it, make it {view.name} version {view.version + 1} in a model of its own, "
                f"backfill and promote it (`{{fh}} backfill {view.name} --version {view.version + 1}`, "
                f"`{{fh}} promote {view.name}@{view.version + 1}`), and retrain the models on it.",
                "The copy stays for you to look at (`featurehouse --project-dir <the copy> check`); `{fh} demo` "
                "removes it."],
        project_dir=copy, facts={"view": view.versioned_name, "column": SCHEMA_COLUMN, "model": str(model)})


def make_copy(project_dir: Path) -> Path:
    """The project's files under <project>/.featurehouse/break-schema/, whose own .featurehouse/ is the
    project's (a relative DuckDB path reads the same warehouse); packages found as the project finds them."""
    import shutil as sh

    copy = project_dir / SCHEMA_COPY
    remove_copy(project_dir)
    sh.copytree(project_dir, copy, symlinks=True,
                ignore=sh.ignore_patterns(".featurehouse", "target", "logs", "__pycache__", "*.duckdb", "*.duckdb.wal"))
    (copy / ".featurehouse").symlink_to(project_dir / ".featurehouse", target_is_directory=True)
    _absolute_local_packages(project_dir, copy)
    return copy


def remove_copy(project_dir: Path) -> None:
    shutil.rmtree(project_dir / SCHEMA_COPY, ignore_errors=True)


def _absolute_local_packages(project_dir: Path, copy: Path) -> None:
    """`local:` package paths relative to the project, made absolute in the copy (it lives elsewhere)."""
    import yaml

    for name in ("packages.yml", "dependencies.yml"):
        path = copy / name
        if not path.is_file():
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        changed = False
        for entry in data.get("packages") or []:
            if isinstance(entry, dict) and "local" in entry and not Path(str(entry["local"])).is_absolute():
                entry["local"] = str((project_dir / str(entry["local"])).resolve())
                changed = True
        if changed:
            path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _duration(value: timedelta) -> str:
    """`15 minutes`, `1 hour`; else as the guards print durations."""
    from featurehouse.guard.freshness import human_duration

    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return human_duration(value.total_seconds())
