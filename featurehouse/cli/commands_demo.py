"""`featurehouse demo`: the main job end to end on embedded defaults, ending as a small live system.

History up to now, `dbt build`, a training set per model, a sync, then a few seconds of fresh events
through the push path and a stream consumer, one vector served over HTTP, and every guardrail judged:
the demo ends green. `featurehouse demo --break freshness|parity|schema` then shows a breach and the
guard that catches it (featurehouse/demo/breaks.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from featurehouse.cli.context import CliContext
from featurehouse.demo.breaks import BREAKS
from featurehouse.errors import InvalidSpine

LIVE_SECONDS = 5.0


@click.command()
@click.option("--project-dir", "demo_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              hidden=True, help="The same as `featurehouse --project-dir` (still taken after `demo`).")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Data size: 1.0 is ~150k transactions.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the deterministic data generator.")
@click.option("--end", default=None,
              help="End the history at this time instead of now (YYYY-MM-DD or an ISO time, UTC). Then there is no "
                   "live phase, and the views are as stale as the history is old.")
@click.option("--live-seconds", type=click.FloatRange(0, 600), default=LIVE_SECONDS, show_default=True,
              help="How long fresh events are pushed and streamed after the sync (0: none).")
@click.option("--no-serve", is_flag=True, help="Skip starting the HTTP server for one vector at the end.")
@click.option("--break", "break_", type=click.Choice(BREAKS), default=None,
              help="Show a breach instead: break freshness, parity or a schema on the demo's state (made first if "
                   "there is none) as it happens in production, and run the guard that catches it. Exits 0 when "
                   "the guard fired; `featurehouse demo` again restores green.")
@click.pass_obj
def demo(obj: CliContext, demo_dir: Path | None, scale: float, seed: int, end: str | None, live_seconds: float,
         no_serve: bool, break_: str | None) -> None:
    """Generate demo data up to now, `dbt build` the example feature views, build a training set per model,
    sync, stream fresh events for a few seconds, serve one vector and judge every guardrail.

    Runs on embedded DuckDB (the example project's default target) and an embedded Redis: nothing to
    install or start. The project is `featurehouse --project-dir` when given, else the example project.
    Training sets are written to <project>/.featurehouse/training/<model>.parquet. Right after, `featurehouse
    freshness`, `parity` and `deploy-check fraud_model@1` pass; the feed stops with the demo, so the
    15-minute SLO of card_txn_stats runs out a quarter of an hour later (`--break freshness` shows that now).
    """
    from featurehouse.packaging import demo_project

    project_dir, where = demo_project(demo_dir_given(obj, demo_dir))
    check_example(project_dir)
    console = obj.console
    console.print(where)
    if break_ is not None:
        show_break(obj, project_dir, break_, scale, seed, no_serve)
    else:
        run_demo(obj, project_dir, scale, seed, end, live_seconds, no_serve)


def demo_dir_given(obj: CliContext, demo_dir: Path | None) -> Path | None:
    """The project the user named: `demo --project-dir`, or the global `--project-dir` (FEATUREHOUSE_PROJECT_DIR)
    when given rather than defaulted; None: the example project."""
    root = click.get_current_context().find_root()
    source = root.get_parameter_source("project_dir")
    given = obj.project_dir if source not in (None, click.core.ParameterSource.DEFAULT) else None
    if demo_dir is not None and given is not None and demo_dir.resolve() != given.resolve():
        raise click.UsageError(f"two project dirs: {given} (featurehouse --project-dir) and {demo_dir} "
                               "(demo --project-dir): give one")
    return demo_dir or given


def check_example(project_dir: Path) -> None:
    """The demo rewrites the raw tables and featurehouse's own state of the project it runs on: only on an
    example project (a copy of it, under any name of directory)."""
    import yaml

    from featurehouse.errors import ProjectError
    from featurehouse.packaging import EXAMPLE_NAME

    try:
        name = (yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8")) or {}).get("name")
    except (OSError, yaml.YAMLError, AttributeError):
        name = None
    if name != EXAMPLE_NAME:
        raise ProjectError(f"{project_dir} holds dbt project '{name}', not featurehouse's example ({EXAMPLE_NAME}): "
                           "`featurehouse demo` replaces its raw tables and featurehouse's state; run it on the "
                           "example (no --project-dir) or a copy of it")


def run_demo(obj: CliContext, project_dir: Path, scale: float, seed: int, end: str | None, live_seconds: float,
             no_serve: bool) -> None:
    from featurehouse.cli.commands_training import write_table
    from featurehouse.clock import utc_now
    from featurehouse.demo import breaks, data
    from featurehouse.store import FeatureStore

    console = obj.console
    started = time.perf_counter()
    store = FeatureStore(project_dir, target=obj.target, profiles_dir=obj.profiles_dir)
    obj._store = store
    history_end = _history_end(end) or utc_now().replace(microsecond=0)  # whole seconds: `--end` can repeat it

    with console.status("generating demo data") as status:
        reset_demo_state(store)
        breaks.remove_copy(project_dir)
        t = time.perf_counter()
        tables = data.generate(scale=scale, seed=seed, end=history_end)
        data.write(store.warehouse, tables, schema="raw")
        store.close()
        rows = sum(t.num_rows for t in tables.values())
        console.print(f"[green]✓[/green] generated {rows:,} rows in {len(tables)} raw tables: {data.DAYS} days of "
                      f"history up to {'now, ' if end is None else ''}{history_end:%Y-%m-%d %H:%M:%S} UTC "
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

    live = None
    if end is None and live_seconds > 0:
        live = live_phase(obj, store, tables, seed, live_seconds)
    if not no_serve:
        with console.status("starting the HTTP server for one vector"):
            t = time.perf_counter()
            if live is not None and live.last_user is not None:
                served = serve_one_vector(store, "user", str(live.last_user), not_before=live.last_event_time)
            else:
                served = serve_one_vector(store, "user", latest_entity(store, "user", "fraud_labels"))
            served.caption = f"({time.perf_counter() - t:.1f}s, the server's start included)"
            served.caption_justify = "left"
        console.print(served)
    with console.status("judging the guardrails"):
        t = time.perf_counter()
        guards, green = judge_guardrails(store, registered[0] if registered else None)
        guards.caption = f"({time.perf_counter() - t:.1f}s)"
        guards.caption_justify = "left"
    console.print(guards)
    where = f"featurehouse --project-dir {project_dir}"
    if green:
        console.print("[green]✓[/green] every guardrail is green. The feed stopped with the demo: card_txn_stats "
                      "(SLO 15m) goes stale a quarter of an hour from now.")
    else:
        console.print("[red]✗[/red] a guardrail fired" + (f": the history ends at {history_end:%Y-%m-%d %H:%M}, "
                                                           "so the views are that old" if end is not None else ""))
    console.print(f"done in {time.perf_counter() - started:.1f}s. Next: `{where} features list`, "
                  f"`{where} lineage {registered[0] if registered else 'fraud_model@1'}`; what a breach looks like: "
                  f"`{where} demo --break freshness` (or parity, schema)")


def _history_end(text: str | None):
    """--end as naive UTC: a date is its midnight; None: now (the caller's clock)."""
    from datetime import datetime, timezone

    from featurehouse.errors import FeaturehouseError

    if text is None:
        return None
    from featurehouse.clock import utc_now

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FeaturehouseError(f"--end {text!r}: use YYYY-MM-DD or an ISO time (UTC)") from None
    value = value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if value > utc_now():
        raise FeaturehouseError(f"--end {text!r} is in the future: the history ends now at the latest")
    return value


def live_phase(obj: CliContext, store, tables, seed: int, seconds: float):
    """A few seconds of fresh events through the push path and a stream consumer (featurehouse/demo/live.py)."""
    from featurehouse.demo.live import STREAMED, run_live

    console = obj.console
    with console.status("live: pushing fresh events") as status:
        def progress(stats, left: float) -> None:
            status.update(f"live: {stats.transactions} transactions and {stats.interactions} interactions pushed, "
                          f"{stats.applied} rows applied by the stream consumer ({left:.0f}s left)")
        stats = run_live(store, tables, seed, seconds, progress)
    rejected = f", [red]{stats.rejected} rejected[/red]" if stats.rejected else ""
    console.print(f"[green]✓[/green] live for {stats.seconds:.1f}s: a producer pushed {stats.transactions} transactions "
                  f"and {stats.interactions} interactions ({stats.rows_pushed} rows for {', '.join(STREAMED)}"
                  f"{rejected}); the stream consumer landed {stats.applied} in the warehouse and wrote them online "
                  f"(lag {stats.lag_s:.1f}s)")
    return stats


def latest_entity(store, entity_type: str, spine: str) -> str:
    """The entity of the spine's newest label."""
    key_cols = store.registry.entities[entity_type].keys
    relation = store.warehouse.relation_sql(store.relation_of(spine))
    key = store.warehouse.fetch_arrow(f"SELECT {', '.join(key_cols)} FROM {relation} ORDER BY label_time DESC LIMIT 1")
    return str(key.to_pylist()[0][key_cols[0]])


def status_summary(statuses: list[str]) -> str:
    """`all 10 values ok`, or `7 of 10 values ok, 3 stale`."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    ok = counts.pop("ok", 0)
    if not counts:
        return f"all {ok} values ok" if ok != 1 else "the value is ok"
    return f"{ok} of {len(statuses)} values ok, " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def serve_one_vector(store, entity_type: str, entity_id: str, not_before=None) -> Table:
    """`featurehouse serve` in a subprocess on a free port, one GET of every online feature of the entity
    type, then stopped. The vector is logged (as serving logs its sample) for the skew and drift gates; it
    is fetched once `not_before` plus the views' serving delay has passed, as training would see it."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import urllib.request
    from datetime import timedelta

    from featurehouse.access.tokens import create_token, new_token, revoke_token
    from featurehouse.clock import utc_now
    from featurehouse.errors import FeaturehouseError
    from featurehouse.serving.served_log import SERVED_STREAM

    views = [v for v in store.online_views() if v.entity.name == entity_type]
    names = [f.name for v in views for f in v.features]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the server is handed the registry loaded here: it then needs no warehouse (Spark's local metastore
    # admits one process at a time)
    from featurehouse.registry.snapshot import save_snapshot

    snapshot = save_snapshot(store.registry, store.project.dir / ".featurehouse" / "serving" / "demo-registry.pickle")
    env = dict(os.environ, FEATUREHOUSE_REDIS_URL=store.online.embedded.url if store.online.embedded
               else os.environ.get("FEATUREHOUSE_REDIS_URL", ""), FEATUREHOUSE_LOG_SAMPLE_RATE="1",
               FEATUREHOUSE_REGISTRY_SNAPSHOT=str(snapshot))
    cmd = [sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(store.project.dir)]
    if store.project.target_name:
        cmd += ["--target", store.project.target_name]
    if store.project.profiles_dir:
        cmd += ["--profiles-dir", str(store.project.profiles_dir)]
    # the server wants a bearer token, as it does by default: the demo makes a short-lived one and revokes it
    secret, token = new_token("demo", "read", timedelta(minutes=10), utc_now(), description="featurehouse demo")
    create_token(store.catalog, store.online.client, token)
    logged = store.online.client.xlen(SERVED_STREAM)
    store.close_warehouse()  # the server loads the registry from the same DuckDB file
    proc = subprocess.Popen(cmd + ["serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1/features/{entity_type}/{entity_id}?names={','.join(names)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {secret}"})
    if not_before is not None:  # a value is served once its serving delay has passed: then training sees it too
        delay = max((v.serving_delay for v in views if v.serving_delay), default=timedelta(0))
        wait = (not_before + delay - utc_now()).total_seconds() + 0.05
        if wait > 0:
            time.sleep(wait)
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
        for _ in range(40):  # the server writes its log sample a moment after answering
            if store.online.client.xlen(SERVED_STREAM) > logged:
                break
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        revoke_token(store.catalog, store.online.client, token.token_id, utc_now())
        store.close_warehouse()
    statuses = [f["status"] for f in body["features"].values()]
    summary = status_summary(statuses)
    style = "green" if all(s == "ok" for s in statuses) else "yellow"
    table = Table(title=f"served over HTTP with a bearer token: GET /v1/features/{entity_type}/{entity_id}  "
                        f"[{style}]{summary}[/{style}]",
                  title_justify="left")
    for col in ("feature", "value", "event time", "age", "status"):
        table.add_column(col)
    for name, f in body["features"].items():
        table.add_row(name, json.dumps(f["value"], ensure_ascii=False), str(f["event_time"]), _age(f["age_seconds"]),
                      f"[green]{f['status']}[/green]" if f["status"] == "ok" else f"[yellow]{f['status']}[/yellow]")
    return table


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    from featurehouse.guard.freshness import human_duration

    return human_duration(seconds)


def judge_guardrails(store, model_ref: str | None) -> tuple[Table, bool]:
    """What `featurehouse freshness`, `parity` and `deploy-check MODEL@VERSION` say now, one line each."""
    freshness = store.freshness()
    parity = store.parity(sample=1000)
    report = store.deploy_check(model_ref) if model_ref else None
    table = Table(title="guardrails now (what `featurehouse freshness`, `parity`, "
                        f"`deploy-check {model_ref or '-'}` say)", title_justify="left")
    for col in ("guard", "verdict", "detail"):
        table.add_column(col)

    def verdict(ok: bool) -> str:
        return "[green]pass[/green]" if ok else "[red]fail[/red]"

    breached = [r for r in freshness if r.status == "breach"]
    no_slo = [r.versioned_name for r in freshness if r.status == "no slo"]
    detail = f"{len(freshness) - len(breached) - len(no_slo)} views within their SLO"
    detail += f", {len(no_slo)} without one ({', '.join(no_slo)})" if no_slo else ""
    detail += "".join(f"; {r.versioned_name}: {'; '.join(r.reasons)}" for r in breached)
    table.add_row("freshness", verdict(not breached), detail)
    failed = [r for r in parity if r.rate > 0]
    detail = (f"{sum(r.mismatched for r in parity):,} of {sum(r.compared for r in parity):,} sampled entities differ "
              f"({len(parity)} online views)")
    detail += "".join(f"; {r.versioned_name}: {', '.join(sorted(r.per_feature))}" for r in failed)
    table.add_row("parity", verdict(not failed), detail)
    green = not breached and not failed
    if report is not None:
        counts: dict[str, int] = {}
        for gate in report.gates:
            counts[gate.status] = counts.get(gate.status, 0) + 1
        skipped = sorted({g.gate for g in report.gates if g.status == "skipped"})
        detail = "gates: " + ", ".join(f"{n} {status}" + (f" ({', '.join(skipped)})" if status == "skipped" else "")
                                       for status, n in sorted(counts.items()))
        detail += "".join(f"; {g.gate} {g.subject}: {g.detail}" for g in report.failures[:3])
        table.add_row(f"deploy-check {report.model}", verdict(report.ok), detail)
        green = green and report.ok
    return table, green


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
    from featurehouse.clock import naive_utc_value
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
                record is not None and offline is not None and on == off
                and record.event_time == naive_utc_value(offline["__fh_event_time"]))
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



def show_break(obj: CliContext, project_dir: Path, which: str, scale: float, seed: int, no_serve: bool) -> None:
    """`demo --break WHICH`: break it on the demo's state (the demo runs first when there is none), run the guard
    that catches it as a user would, and say how to repair. Exits 0 when the guard fired (exit 1), 1 when not."""
    import sys

    from featurehouse.demo import breaks
    from featurehouse.store import FeatureStore

    console = obj.console
    store = FeatureStore(project_dir, target=obj.target, profiles_dir=obj.profiles_dir)
    obj._store = store
    if not demo_state(store):
        console.print(f"no demo state in {project_dir} yet: the demo runs first")
        store.close()
        run_demo(obj, project_dir, scale, seed, None, LIVE_SECONDS, no_serve)
        store = obj._store
    assert store is not None  # run_demo leaves its store open for the break
    make = {"freshness": breaks.stop_feeding, "parity": breaks.bad_writer, "schema": breaks.schema_change}[which]
    broken = make(store, project_dir)
    store.close()  # the guard opens the warehouse and the online store itself, as its own command would
    console.rule(f"[bold]breach: {which}[/bold]")
    for line in broken.what:
        console.print(line, highlight=False)
    code = run_guard(obj, broken.project_dir, broken.command, broken.clock_ahead)
    if code != 1:
        console.print(f"[red]✗[/red] `featurehouse {broken.command[0]}` exited {code}: the guard did not catch the "
                      "breach (a bug: please report it)")
        sys.exit(1)
    console.print(f"[green]✓[/green] caught: `featurehouse {broken.command[0]}` exited {code}, as it does in CI and "
                  "cron when its guard fires.")
    console.print("[bold]repair:[/bold]")
    fh = " ".join(["featurehouse", *global_options(obj, project_dir)])
    for line in broken.repair:
        console.print(f"  {line.replace('{fh}', fh)}", highlight=False)


def demo_state(store) -> bool:
    """Whether the demo ran on this project: its models are registered in the warehouse and values are online."""
    try:
        return bool(store.lineage_log().model_versions_of("fraud_model")) and bool(store.online.layouts())
    except Exception:  # noqa: BLE001 - no warehouse file, no catalog tables yet: no demo state
        return False


def global_options(obj: CliContext, project_dir: Path) -> list[str]:
    """`--project-dir` and the other global options of this run, for a command to run on the same project."""
    args = ["--project-dir", str(project_dir)]
    if obj.target:
        args += ["--target", obj.target]
    if obj.profiles_dir:
        args += ["--profiles-dir", str(obj.profiles_dir)]
    return args


def run_guard(obj: CliContext, project_dir: Path, command: list[str], clock_ahead=None) -> int:
    """A guard command run as `featurehouse --project-dir ... COMMAND` would run (in this process); its exit code."""
    import shlex

    from featurehouse.cli.main import cli
    from featurehouse.demo.breaks import clock_ahead as moved_clock
    from featurehouse.guard.freshness import human_duration

    args = global_options(obj, project_dir) + command
    later = f"   (its clock {human_duration(clock_ahead.total_seconds())} ahead)" if clock_ahead else ""
    obj.console.print(f"\n[bold]$ featurehouse {' '.join(shlex.quote(a) for a in args)}[/bold]{later}", highlight=False)
    with moved_clock(clock_ahead):
        try:
            cli.main(args=args, prog_name="featurehouse", standalone_mode=False)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0
