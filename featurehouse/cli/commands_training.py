"""`featurehouse training-set`: a point-in-time correct training set from the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import click
from rich.table import Table

from featurehouse.cli.context import CliContext
from featurehouse.errors import FeaturehouseError, InvalidSpine
from featurehouse.offline.training_set import LineageNotRecorded, arrow_to_pandas
from featurehouse.registry.model import FeatureRef


@click.command("training-set")
@click.option("--spine", default=None,
              help="The rows to build features for: a Parquet/CSV file, a dbt model or warehouse relation, or SQL. "
                   "Default with --model: the spine its exposure names.")
@click.option("--timestamp", default=None, help="The spine's as-of timestamp column (default with --model: its exposure's).")
@click.option("--features", "-f", default=None, help="Comma-separated features: view.column or view.column@N.")
@click.option("--model", "model_name", default=None, help="Use the feature list of this ML model's dbt exposure.")
@click.option("--entity", default=None, help="The spine's entity type (its key columns must be in the spine).")
@click.option("--as-known-at", is_flag=True, help="Only rows whose created_at <= the as-of time (no late corrections leak in).")
@click.option("--no-order", is_flag=True, help="Do not keep the spine's row order (a little faster).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the training set to this .parquet or .csv file (default: print the first rows).")
@click.option("--as-model", "as_model", default=None, metavar="NAME",
              help="Instead of running it, write models/training/NAME.sql: a dbt model calling "
                   "featurehouse.point_in_time_join (the spine must then be a dbt model).")
@click.option("--force", is_flag=True, help="With --as-model: replace models/training/NAME.sql if it exists.")
@click.option("--show-sql", is_flag=True, help="Print the generated SQL.")
@click.option("--name", default=None, help="A label kept with the training set's lineage record.")
@click.option("--no-record", is_flag=True, help="Do not record the training set for lineage and drift checks.")
@click.pass_obj
def training_set(obj: CliContext, spine, timestamp, features, model_name, entity, as_known_at, no_order, out,
                 as_model, force, show_sql, name, no_record) -> None:
    """Build a point-in-time correct training set.

    Every spine row appears once, in order, with its own columns (labels) and, per feature, the value
    of the newest row with event_time <= the row's timestamp (within the view's TTL; see docs/semantics.md).

    \b
    Examples:
      featurehouse training-set --spine labels.parquet --entity user --timestamp label_time \\
          --features user_txn_stats.txn_count_1h,user_profile.country --out train.parquet
      featurehouse training-set --model fraud_model --out fraud_train.parquet
      featurehouse training-set --model fraud_model --as-model fraud_training_set
    """
    store = obj.store()
    names: list[str] = [f.strip() for f in features.split(",") if f.strip()] if features else []
    if model_name:
        spec = store.registry.model(model_name)
        names = names or list(spec.features)
        spine = spine or spec.spine
        timestamp = timestamp or spec.timestamp
    if not names:
        raise FeaturehouseError("no features: pass --features view.column,... or --model NAME")
    if not spine:
        raise InvalidSpine("no spine: pass --spine (a file, a dbt model, or SQL)")
    if not timestamp:
        raise InvalidSpine("no timestamp column: pass --timestamp")

    if as_model:
        path = write_training_model(obj, store, as_model, spine, timestamp, names, as_known_at, model_name, force)
        obj.console.print(f"[green]✓[/green] wrote {path}; build it with `featurehouse build --select {as_model}`")
        return

    with obj.console.status("building training set") as status, warnings.catch_warnings():
        warnings.simplefilter("ignore", LineageNotRecorded)  # printed below as one line, not as a Python warning
        result = store.build_training_set(spine, names, timestamp, entity=entity, as_known_at=as_known_at,
                                          keep_order=not no_order, progress=lambda msg: status.update(msg),
                                          record=not no_record, name=name or model_name, model=model_name)
        if out is not None:
            status.update(f"writing {out}")
            write_table(result.table, out)
    if show_sql:
        click.echo(result.sql)
    null_rates = {c: result.table.column(c).null_count / max(result.rows, 1) for c in result.columns}
    summary = Table(title=f"training set: {result.rows:,} rows x {len(result.features)} features "
                          f"in {result.seconds:.2f}s ({result.engine}, {result.plan} plan)", title_justify="left")
    summary.add_column("feature")
    summary.add_column("column")
    summary.add_column("null rate", justify="right")
    for feature, column in zip(result.features, null_rates):
        summary.add_row(feature, column, f"{null_rates[column]:.1%}")
    obj.console.print(summary)
    if result.record_error:
        click.echo(f"warning: {result.record_error}", err=True)
    if result.record is not None:
        obj.console.print(f"[green]✓[/green] recorded as training set [bold]{result.record.training_set_id}[/bold]; "
                          f"bind a model to it: `featurehouse model register NAME@VERSION --training-set "
                          f"{result.record.training_set_id}`")
    if out is not None:
        obj.console.print(f"[green]✓[/green] wrote {out}")
    else:
        obj.console.print(arrow_to_pandas(result.table.slice(0, 10)).to_string(max_cols=20))


def write_table(table, out: Path) -> None:
    """`--out` as parquet or CSV; a path that cannot be written is an error naming it."""
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise FeaturehouseError(f"--out {out}: use a .parquet or .csv file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, out)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, out)
    except OSError as e:  # Arrow's I/O errors are OSErrors too
        raise FeaturehouseError(f"--out {out}: cannot write it: {' '.join(str(e.strerror or e).split())[:300]}") from None


def write_training_model(obj: CliContext, store, name: str, spine: str, timestamp: str, names: list[str],
                         as_known_at: bool, model: str | None = None, force: bool = False) -> Path:
    """A dbt model file whose body is the point_in_time_join macro call, so dbt builds the as-of view. The
    principal must be allowed every feature (and, with --model, the model's team too), and the call names
    the exposure, so dbt checks its team again at every compile."""
    from featurehouse.store import _views_of

    if not name.isidentifier():
        raise FeaturehouseError(f"--as-model {name!r}: a dbt model name must be a plain identifier")
    if store.relation_of(spine) is None:
        raise InvalidSpine(f"--as-model needs --spine to name a dbt model or source table; '{spine}' is neither")
    for text in names:
        store.registry.resolve(FeatureRef.parse(text))  # unknown features fail here, naming the feature
    store.authorize(_views_of(store.registry, names), model, path="training_set")
    path = store.project.dir / "models" / "training" / f"{name}.sql"
    existing = [p for p in (store.project.dir / "models").rglob(f"{name}.sql")] if (store.project.dir / "models").is_dir() \
        else []
    if existing and not force:
        raise FeaturehouseError(f"--as-model {name}: {existing[0].relative_to(store.project.dir)} exists already; pass "
                                "--force to replace it, or choose another name")
    path.parent.mkdir(parents=True, exist_ok=True)
    listed = ",\n".join(f"        {text!r}" for text in names)
    known = (", as_known_at=true" if as_known_at else "") + (f", exposure={model!r}" if model else "")
    path.write_text(
        "-- Written by `featurehouse training-set --as-model`: the point-in-time training view.\n"
        f"{{{{ featurehouse.point_in_time_join(\n    spine=ref({spine!r}),\n    timestamp={timestamp!r},\n"
        f"    features=[\n{listed}\n    ]{known}) }}}}\n",
        encoding="utf-8",
    )
    return path
