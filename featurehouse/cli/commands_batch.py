"""`featurehouse batch-features`: batch scoring inputs, read from the warehouse by serving's rules."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from featurehouse.cli.context import CliContext
from featurehouse.errors import FeaturehouseError

if TYPE_CHECKING:
    import pyarrow as pa


def _entity_of(store, names: list[str], model: str | None) -> str:
    """The one entity type the features belong to (a model's features may span several: then --entity)."""
    if model:
        names = list(store.registry.model(model.partition("@")[0]).features)
    types = sorted({store.registry.resolve(n)[0].entity.name for n in names})
    if len(types) != 1:
        raise FeaturehouseError(f"the features belong to entity types {', '.join(types)}: pick one with --entity")
    return types[0]


def _read_ids(path: Path) -> tuple[list[str] | None, pa.Table | None]:
    """A .parquet/.csv file is a spine (key columns, passed through); any other file holds one id a line."""
    if not path.is_file():
        raise FeaturehouseError(f"--ids {path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq", ".csv"):
        return None, _read_spine(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise FeaturehouseError(f"--ids {path}: not UTF-8 text ({e.reason} at byte {e.start}); give one id a line, "
                                "or a .parquet/.csv spine") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise FeaturehouseError(f"--ids {path}: no ids in it")
    return ids, None


def _read_spine(path: Path) -> pa.Table:
    """The spine file read here, so an empty or corrupt one is a line naming it, not Arrow's traceback."""
    import pyarrow as pa  # imported when used: the CLI starts without Arrow

    try:
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path)
            # Arrow reads a CSV column that is not UTF-8 as bytes, which no key column can be compared with
            undecoded = [f.name for f in table.schema if pa.types.is_binary(f.type)]
            if undecoded:
                raise FeaturehouseError(f"--ids {path}: column '{undecoded[0]}' is not UTF-8 text")
            return table
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise FeaturehouseError(f"--ids {path} cannot be read: {' '.join(str(e).split())[:300]}") from None


@click.command("batch-features")
@click.option("--model", default=None, help="Read this model's features (an exposure, or NAME@VERSION registered).")
@click.option("--features", "-f", default=None, help="Comma-separated features: view.column or view.column@N.")
@click.option("--entity", default=None, help="The entity type (default: the one the features belong to).")
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A text file with one id a line (`42`, `card_id=1;merchant_id=7`), or a .parquet/.csv spine "
                   "holding the entity's key columns (its other columns are passed through).")
@click.option("--all", "all_entities", is_flag=True, help="Every entity the features' views hold.")
@click.option("--as-of", default=None, help="Read the warehouse as it was at this time (ISO, UTC; default now).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write the vectors to this .parquet or .csv file.")
@click.pass_obj
def batch_features(obj: CliContext, model, features, entity, ids_file, all_entities, as_of, out) -> None:
    """Feature vectors for batch scoring: for each entity, what online serving would answer.

    Values come from the warehouse with serving's rules: the row the sync puts online, the active (or
    pinned, or the model version's) feature versions, values past their TTL withheld as `expired`,
    `stale` past the freshness SLO. Per view, the output has __event_time, __age_seconds, __status and
    __version columns beside the values.

    \b
    Examples:
      featurehouse batch-features --model fraud_model --entity user --ids users.txt --out scores_in.parquet
      featurehouse batch-features -f user_profile.country,user_txn_stats.txn_count_1h --all --out all.csv
    """
    from featurehouse.cli.commands_training import write_table

    names = [f.strip() for f in features.split(",") if f.strip()] if features else []
    if not names and not model:
        raise FeaturehouseError("no features: pass --features view.column,... or --model NAME")
    if bool(ids_file) == all_entities:
        raise FeaturehouseError("pass --ids FILE or --all (one of them)")
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise FeaturehouseError(f"--out {out}: use a .parquet or .csv file name")
    when = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            raise FeaturehouseError(f"--as-of {as_of!r}: use an ISO timestamp such as 2026-05-01T12:00") from None
    ids, spine = _read_ids(ids_file) if ids_file else (None, None)
    store = obj.store()
    entity = entity or _entity_of(store, names, model)
    with obj.console.status("batch features") as status:
        result = store.batch_features(entity, ids=ids, spine=spine, names=names or None, model=model, as_of=when,
                                      all_entities=all_entities, progress=status.update)
        write_table(result.table, out)
    statuses = {}
    for name in result.table.column_names:
        if name.endswith("__status"):
            for value in result.table.column(name).to_pylist():
                statuses[value] = statuses.get(value, 0) + 1
    counts = ", ".join(f"{n:,} {s}" for s, n in sorted(statuses.items()))
    obj.console.print(f"[green]✓[/green] wrote {out}: {result.rows:,} {entity} vectors × {len(result.names)} features "
                      f"in {result.seconds:.2f} s (view values: {counts})")
