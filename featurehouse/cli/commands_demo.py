"""`featurehouse demo`: the main job end to end on embedded defaults."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from featurehouse.cli.context import CliContext
from featurehouse.errors import InvalidSpine, ProjectError

EXAMPLE_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"


@click.command()
@click.option("--project-dir", "demo_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"The example project to run (default: {EXAMPLE_PROJECT}).")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Data size: 1.0 is ~150k transactions.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the deterministic data generator.")
@click.option("--end", default=None, help="The day the demo history ends (YYYY-MM-DD; default: today, UTC), so "
                                          "served values are hours old, not months.")
@click.option("--no-serve", is_flag=True, help="Skip starting the HTTP server for one vector at the end.")
@click.pass_obj
def demo(obj: CliContext, demo_dir: Path | None, scale: float, seed: int, end: str | None, no_serve: bool) -> None:
    """Generate demo data, `dbt build` the example feature views, and build a training set per model.

    Runs on embedded DuckDB (the example project's default target): nothing to install or start.
    Training sets are written to <project>/.featurehouse/training/<model>.parquet.
    """
    from featurehouse.cli.commands_training import write_table
    from featurehouse.demo import data
    from featurehouse.store import FeatureStore

    project_dir = (demo_dir or EXAMPLE_PROJECT).resolve()
    if not (project_dir / "dbt_project.yml").is_file():
        raise ProjectError(f"no example project at {project_dir}: run from a featurehouse checkout or pass --project-dir")
    console = obj.console
    started = time.perf_counter()
    store = FeatureStore(project_dir, target=obj.target)
    obj._store = store

    with console.status("generating demo data") as status:
        reset_demo_state(store)
        t = time.perf_counter()
        tables = data.generate(scale=scale, seed=seed, end=_end_day(end))
        data.write(store.warehouse, tables, schema="raw")
        store.close()
        rows = sum(t.num_rows for t in tables.values())
        console.print(f"[green]✓[/green] generated {rows:,} rows in {len(tables)} raw tables "
                      f"({time.perf_counter() - t:.1f}s)")
        status.update("dbt build: feature views, labels, tests")
        t = time.perf_counter()
        result = store.build(quiet=True)
        statuses: dict[str, int] = {}
        for r in result.result.results:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        console.print("[green]✓[/green] dbt build: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
                      + f" ({time.perf_counter() - t:.1f}s)")

    registry = store.registry
    console.print(f"[green]✓[/green] registry: {len(registry.views)} feature views, {len(registry.features())} features, "
                  f"{len(registry.models)} models")

    table = Table(title="training sets (point-in-time correct)", title_justify="left")
    for col in ("model", "spine", "rows", "features", "non-null", "seconds", "training set", "written to"):
        table.add_column(col, justify="right" if col in ("rows", "features", "non-null", "seconds") else "left")
    out_dir = project_dir / ".featurehouse" / "training"
    trained: dict[str, str] = {}
    for name, spec in sorted(registry.models.items()):
        if spec.timestamp is None:
            raise InvalidSpine(f"model '{name}' names no spine timestamp column: "
                               "set meta.featurehouse.entity_timestamp on its exposure")
        with console.status(f"training set for {name}") as status:
            result = store.build_training_set(spec.spine, list(spec.features), spec.timestamp,
                                              progress=lambda msg, name=name: status.update(f"{name}: {msg}"))
            out = out_dir / f"{name}.parquet"
            write_table(result.table, out)
        cells = result.rows * len(result.columns)
        nulls = sum(result.table.column(c).null_count for c in result.columns)
        trained[name] = result.record.training_set_id
        table.add_row(name, spec.spine or "-", f"{result.rows:,}", str(len(result.features)),
                      f"{1 - nulls / max(cells, 1):.0%}", f"{result.seconds:.2f}", result.record.training_set_id,
                      str(out.relative_to(project_dir)))
    console.print(table)

    with console.status("sync: warehouse -> online store (embedded Redis)"):
        t = time.perf_counter()
        runs = store.sync(full_refresh=True)
    console.print(f"[green]✓[/green] sync of {len(runs)} views: {sum(r.rows_read for r in runs):,} latest rows read, "
                  f"{sum(r.rows_written for r in runs):,} written, {sum(r.rows_skipped_older for r in runs):,} already "
                  f"current in the online store ({time.perf_counter() - t:.1f}s)")
    registered = register_demo_models(store, trained)
    console.print(f"[green]✓[/green] model versions bound to their training sets: {', '.join(registered)}")
    console.print(online_vs_offline(store, "user", "fraud_labels"))
    if not no_serve:
        with console.status("starting the HTTP server for one vector"):
            served = serve_one_vector(store, "user", "fraud_labels")
        console.print(served)
    console.print(f"guardrails: `featurehouse --project-dir {project_dir} lineage {registered[0]}`, `freshness`, "
                  f"`parity`, `deploy-check {registered[0]}`")
    console.print(f"done in {time.perf_counter() - started:.1f}s. Next: `featurehouse --project-dir {project_dir} "
                  f"features list`")


def _end_day(text: str | None):
    from datetime import datetime, timezone

    from featurehouse.errors import FeaturehouseError

    if text is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise FeaturehouseError(f"--end {text!r}: use YYYY-MM-DD") from None


def serve_one_vector(store, entity_type: str, spine: str) -> Table:
    """`featurehouse serve` in a subprocess on a free port, one GET, then stopped."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import urllib.request

    from featurehouse.errors import FeaturehouseError

    key_cols = store.registry.entities[entity_type].keys
    relation = store.warehouse.relation_sql(store.relation_of(spine))
    key = store.warehouse.fetch_arrow(f"SELECT {', '.join(key_cols)} FROM {relation} ORDER BY label_time DESC LIMIT 1")
    entity_id = str(key.to_pylist()[0][key_cols[0]])
    names = [f.name for v in store.online_views() if v.entity.name == entity_type for f in v.features][:6]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, FEATUREHOUSE_REDIS_URL=store.online.embedded.url if store.online.embedded
               else os.environ.get("FEATUREHOUSE_REDIS_URL", ""))
    cmd = [sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(store.project.dir)]
    if store.project.target_name:
        cmd += ["--target", store.project.target_name]
    # the server wants a bearer token, as it does by default: the demo makes a short-lived one and revokes it
    from datetime import timedelta

    from featurehouse.access.tokens import create_token, new_token, revoke_token
    from featurehouse.clock import utc_now

    secret, token = new_token("demo", "read", timedelta(minutes=10), utc_now(), description="featurehouse demo")
    create_token(store.catalog, store.online.client, token)
    store.close_warehouse()  # the server loads the registry from the same DuckDB file
    proc = subprocess.Popen(cmd + ["serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1/features/{entity_type}/{entity_id}?names={','.join(names)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {secret}"})
    try:
        body = None
        for _ in range(300):
            if proc.poll() is not None:
                assert proc.stderr is not None  # stderr=subprocess.PIPE
                raise FeaturehouseError(f"featurehouse serve exited: {proc.stderr.read().decode()[-500:]}")
            try:
                with urllib.request.urlopen(request, timeout=2) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.05)
        if body is None:
            raise FeaturehouseError("featurehouse serve did not answer within 15 s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        revoke_token(store.catalog, store.online.client, token.token_id, utc_now())
        store.close_warehouse()
    table = Table(title=f"served over HTTP with a bearer token: GET /v1/features/{entity_type}/{entity_id}  "
                        f"(stale: {body['stale']})",
                  title_justify="left")
    for col in ("feature", "value", "event time", "age", "status"):
        table.add_column(col)
    for name, f in body["features"].items():
        age = f["age_seconds"]
        table.add_row(name, json.dumps(f["value"], ensure_ascii=False), str(f["event_time"]),
                      "-" if age is None else f"{age / 3600:.1f} h", f["status"])
    return table


def reset_demo_state(store) -> None:
    """The demo starts clean: no pushed rows, sync history, promotions or online values from earlier runs."""
    import os
    import shutil

    from sqlglot import exp

    schema = exp.to_identifier(store.catalog.schema, quoted=True).sql(store.warehouse.dialect)
    store.warehouse.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    store.close()
    if not os.environ.get("FEATUREHOUSE_REDIS_URL"):
        shutil.rmtree(store.project.dir / ".featurehouse" / "redis", ignore_errors=True)


def online_vs_offline(store, entity_type: str, spine: str) -> Table:
    """One entity's online vector beside the warehouse's latest row of each view: they must agree."""
    from featurehouse.sync.latest import latest_row_sql

    views = [v for v in store.online_views() if v.entity.name == entity_type]
    key_cols = store.registry.entities[entity_type].keys
    relation = store.warehouse.relation_sql(store.relation_of(spine))
    key = tuple(store.warehouse.fetch_arrow(f"SELECT {', '.join(key_cols)} FROM {relation} LIMIT 1").to_pylist()[0].values())
    online = store.online.read(entity_type, [key], [(v, v.version) for v in views])[0]
    table = Table(title=f"{entity_type} {', '.join(map(str, key))}: online vector vs warehouse latest",
                  title_justify="left")
    for col in ("feature", "online value", "warehouse value", "event time", "match"):
        table.add_column(col)
    for view in views:
        record = online[view.versioned_name]
        rows = store.warehouse.fetch_arrow(latest_row_sql(view, key, store.warehouse.dialect)).to_pylist()
        offline = rows[0] if rows else None
        for feature in view.features:
            on = record.values.get(feature.column) if record else None
            off = offline[feature.column] if offline else None
            same = (record is None and offline is None) or (
                record is not None and offline is not None and on == off and record.event_time == offline["__fh_event_time"])
            table.add_row(feature.name, repr(on), repr(off), str(record.event_time if record else "-"),
                          "[green]yes[/green]" if same else "[red]NO[/red]")
    return table


def register_demo_models(store, trained: dict[str, str]) -> list[str]:
    """Each demo model's version 1 bound to the training set just built (on a first run; a re-run keeps
    the binding it made before, as a registry of model versions must)."""

    refs = []
    log = store.lineage_log()
    for name, training_set_id in sorted(trained.items()):
        existing = log.model_versions_of(name)
        if existing:
            refs.append(existing[-1].ref)
            store.register_model(existing[-1].ref, existing[-1].training_set_id, existing[-1].features)
        else:
            refs.append(store.register_model(f"{name}@1", training_set_id).ref)
    return refs

