"""Guardrail commands: check (schema gate), freshness, parity, skew, drift, deploy-check.

Each prints a table a release engineer can read and exits 1 when its guard fires (2 is kept for
user errors), so cron jobs and CI can run them as they are.
"""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from featurehouse.cli.context import CliContext

STATUS_STYLE = {"ok": "green", "new": "cyan", "retired": "dim", "changed": "red", "removed": "red",
                "breach": "red", "no slo": "dim", "fail": "red", "pass": "green", "skipped": "yellow",
                "flagged": "red", "warn": "yellow"}


def styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def emit_json(payload) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


@click.command()
@click.option("--no-compile", is_flag=True,
              help="Compare the built relations instead of compiling the current SQL (faster; misses unbuilt edits).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def check(obj: CliContext, no_compile: bool, as_json: bool) -> None:
    """Schema and access gate: fail if a published feature version's columns, types or SQL changed, or a
    model (exposure) uses a feature its team may not read.

    A view@version is published once it was synced, backfilled, promoted or used in a recorded training
    set. dbt compiles the feature views and the warehouse describes the compiled SQL (nothing is built),
    so run this in CI before `dbt build`. A new version always passes; so do metadata-only edits (owner,
    SLO, description). A published version whose SQL changed fails too (its online values would keep the
    old logic), unless it declares `meta.featurehouse.restatement: <reason>`. Exits 1 naming view,
    column, old and new type and the version to bump to.
    """
    store = obj.store()
    with obj.console.status("compiling feature views and describing their SQL" if not no_compile else "reading schemas"):
        result = store.check(compile_sql=not no_compile)
    if as_json:
        emit_json({"ok": result.ok, "views": [r.__dict__ for r in result.rows],
                   "changes": [{**c.__dict__, "message": c.message} for c in result.changes],
                   "logic_changes": [{**c.__dict__, "ok": c.ok, "message": c.message} for c in result.logic],
                   "access": [d.as_dict() for d in result.access], "access_warnings": result.access_warnings})
    else:
        table = Table(title="schema gate: published feature versions", title_justify="left")
        for col in ("view@version", "status", "detail"):
            table.add_column(col)
        for r in result.rows:
            table.add_row(f"{r.view}@{r.version}", styled(r.status), r.detail)
        obj.console.print(table)
        for c in result.changes:
            obj.console.print(f"[red]✗[/red] {c.message}")
        for lc in result.logic:
            obj.console.print(f"[yellow]![/yellow] {lc.message}" if lc.ok else f"[red]✗[/red] {lc.message}")
        for d in result.access:
            obj.console.print(f"[red]✗[/red] model '{d.model}' uses {d.view}, which its team may not read: {d.reason}; "
                              f"{d.remedy}")
        for note in result.access_warnings:
            obj.console.print(f"[yellow]![/yellow] {note}")
        if result.ok:
            obj.console.print("[green]✓[/green] no published schema changed, nor published SQL without a new version; "
                              "every model's team may read the features it uses")
    sys.exit(0 if result.ok else 1)


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else "-"


def _seconds(value) -> str:
    from featurehouse.guard.freshness import human_duration

    return human_duration(value) if value is not None else "-"


@click.command()
@click.option("--select", "-s", multiple=True, help="Views to check (`view` or `view@N`); default: every view's active version.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--prometheus", "prometheus_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the figures as Prometheus gauges to this file (node_exporter's textfile collector).")
@click.pass_obj
def freshness(obj: CliContext, select, as_json: bool, prometheus_file) -> None:
    """Freshness per view: newest event in the warehouse, last good sync and its watermark, stream lag,
    age against the freshness SLO. Exits 1 on any breach (for cron and CI).

    A breach is what makes serving flag every value of the view stale: its materializer lags past the
    SLO (the same computation serving uses), or its newest event is older than the SLO.
    """
    from featurehouse.guard.freshness import prometheus_text

    store = obj.store()
    with obj.console.status("reading the warehouse and the online store"):
        rows = store.freshness(select)
    if prometheus_file:
        from pathlib import Path

        from featurehouse.errors import FeaturehouseError

        tmp = Path(prometheus_file).with_suffix(".tmp")
        try:
            tmp.write_text(prometheus_text(rows), encoding="utf-8")
            tmp.replace(prometheus_file)  # atomic: the collector never reads half a file
        except OSError as e:  # a path the user gave that cannot be written: theirs to fix
            raise FeaturehouseError(f"--prometheus {prometheus_file}: cannot write it: {e.strerror or e}") from None
    if as_json:
        emit_json([{**r.__dict__, "versioned_name": r.versioned_name} for r in rows])
    else:
        table = Table(title="freshness", title_justify="left")
        for col in ("view@version", "newest event", "age", "last good sync", "watermark", "stream lag", "lag", "SLO",
                    "status"):
            table.add_column(col, justify="right" if col in ("age", "stream lag", "lag", "SLO") else "left")
        for r in rows:
            table.add_row(r.versioned_name, _when(r.newest_event_time), _seconds(r.data_age_s), _when(r.last_sync_at),
                          _when(r.sync_watermark), _seconds(r.stream_lag_s), _seconds(r.materializer_lag_s),
                          _seconds(r.slo_s), styled(r.status))
        obj.console.print(table)
        for r in rows:
            for reason in r.reasons:
                obj.console.print(f"[red]✗[/red] {r.versioned_name}: {reason}")
    sys.exit(1 if any(r.status == "breach" for r in rows) else 0)


@click.command()
@click.option("--select", "-s", multiple=True,
              help="Views to compare (`view`, or `view@N` for a candidate version before promote); default: online views.")
@click.option("--sample", type=click.IntRange(1, 100_000_000), default=1000, show_default=True,
              help="Entities per view, picked by a hash of the key.")
@click.option("--all", "all_entities", is_flag=True, help="Compare every entity instead of a sample.")
@click.option("--max-mismatch", type=float, default=0.0, show_default=True,
              help="Fail when the share of compared entities with any difference is above this.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def parity(obj: CliContext, select, sample: int, all_entities: bool, max_mismatch: float, as_json: bool) -> None:
    """Compare online values and event times with the warehouse's latest rows.

    Reports, per view and feature, the mismatch rate and examples (entity, online, warehouse). Rows
    that reached the warehouse after the last good sync are counted as pending, not as mismatches.
    Run it on a backfilled version before `promote` with `--select view@N`. Exits 1 above --max-mismatch.
    """
    store = obj.store()
    with obj.console.status("comparing online values with the warehouse"):
        results = store.parity(select, None if all_entities else sample)
    failed = [r for r in results if r.rate > max_mismatch]
    if as_json:
        emit_json([{"view": r.versioned_name, "compared": r.compared, "mismatched": r.mismatched, "rate": r.rate,
                    "missing_online": r.missing_online, "event_time_differs": r.event_time_differs,
                    "pending": r.pending, "expired": r.expired,
                    "features": {f: {"mismatched": n, "rate": n / max(r.compared, 1),
                                     "examples": [m.__dict__ for m in r.examples.get(f, [])]}
                                 for f, n in r.per_feature.items()}} for r in results])
        sys.exit(1 if failed else 0)
    table = Table(title=f"parity: online vs warehouse ({'all entities' if all_entities else f'sample of {sample}'})",
                  title_justify="left")
    for col in ("view@version", "compared", "mismatched", "rate", "missing online", "event time differs", "pending",
                "expired", "status"):
        table.add_column(col, justify="left" if col in ("view@version", "status") else "right")
    for r in results:
        table.add_row(r.versioned_name, f"{r.compared:,}", f"{r.mismatched:,}", f"{r.rate:.2%}", f"{r.missing_online:,}",
                      f"{r.event_time_differs:,}", f"{r.pending:,}", f"{r.expired:,}",
                      styled("fail" if r in failed else "pass"))
    obj.console.print(table)
    for r in results:
        for feature, n in sorted(r.per_feature.items(), key=lambda kv: -kv[1]):
            if feature.endswith(".<entity>"):  # whole entities the online store does not hold
                obj.console.print(f"[red]✗[/red] {r.versioned_name}: {n:,} of {r.compared:,} entities missing online "
                                  f"({n / max(r.compared, 1):.2%})")
            else:
                obj.console.print(f"[red]✗[/red] {feature}@{r.version}: {n:,} of {r.compared:,} entities differ "
                                  f"({n / max(r.compared, 1):.2%})")
            for m in r.examples.get(feature, []):
                text = (f"    entity {m.entity_id}: not online (warehouse event time {_when(m.warehouse)})"
                        if m.kind == "missing_online" else
                        f"    entity {m.entity_id}: online {_value(m.online)}, warehouse {_value(m.warehouse)}")
                obj.console.print(text, markup=False, highlight=False)
        if r.mismatched:
            obj.console.print(f"  repair: featurehouse sync --full-refresh --select {r.view} (rewrites every entity "
                              f"of the view; a plain sync only carries rows newer than its watermark)",
                              markup=False, highlight=False)
    sys.exit(1 if failed else 0)


def _value(value) -> str:
    """A value as a person reads it: times in ISO form, text quoted, the rest as Python prints it."""
    from datetime import datetime

    return value.isoformat(sep=" ") if isinstance(value, datetime) else repr(value)


def _since(value: str | None):
    from featurehouse.cli.commands_versions import _when as parse_when

    return parse_when(value, "--since")


def _land(store, console) -> int:
    from featurehouse.guard.served import land_served

    with console.status("landing the served-vector log in the warehouse"):
        return land_served(store.online.client, store.catalog)


@click.command()
@click.option("--model", default=None, help="Only vectors served for this model (`name` or `name@version`).")
@click.option("--since", default=None, help="Only vectors served since this time (ISO, UTC).")
@click.option("--max-mismatch", type=float, default=0.01, show_default=True,
              help="Flag a feature whose served values differ from the point-in-time values more often than this.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def skew(obj: CliContext, model, since, max_mismatch: float, as_json: bool) -> None:
    """Training-serving skew: served values against the point-in-time values training would have joined.

    Lands the served-vector log (`featurehouse serve` samples `log_sample_rate` of vectors), then runs
    the point-in-time join at each logged `served_at` and compares per feature: mismatch rate, mean
    absolute numeric error, null rate served vs offline. Exits 1 when a feature is past --max-mismatch.
    """
    store = obj.store()
    landed = _land(store, obj.console)
    with obj.console.status("recomputing served vectors point-in-time"):
        results = store.skew(model, _since(since))
    flagged = [r for r in results if r.mismatch_rate > max_mismatch]
    if as_json:
        emit_json([{**r.__dict__, "mismatch_rate": r.mismatch_rate, "flagged": r in flagged} for r in results])
        sys.exit(1 if flagged else 0)
    if not results:
        obj.console.print("no served vectors logged" + (f" for model {model}" if model else "")
                          + "; serving logs log_sample_rate of them (`featurehouse serve --config`)")
        sys.exit(0)
    table = Table(title=f"training-serving skew ({landed:,} vectors newly landed)", title_justify="left")
    for col in ("feature", "served", "mismatch rate", "mean abs error", "null served", "null offline", "status"):
        table.add_column(col, justify="left" if col in ("feature", "status") else "right")
    for r in results:
        table.add_row(r.feature, f"{r.compared:,}", f"{r.mismatch_rate:.2%}",
                      "-" if r.mean_abs_error is None else f"{r.mean_abs_error:.4g}", f"{r.null_rate_served:.1%}",
                      f"{r.null_rate_offline:.1%}", styled("flagged" if r in flagged else "ok"))
    obj.console.print(table)
    for r in flagged:
        for entity, at, served, offline in r.examples:
            obj.console.print(f"[red]✗[/red] {r.feature}: entity {entity} at {at}: served {served}, point-in-time {offline}")
    sys.exit(1 if flagged else 0)


@click.command()
@click.option("--training-set", "training_set_id", default=None,
              help="A recorded training set's id (ts_...); default with --model NAME@VERSION: the one it is bound to.")
@click.option("--model", default=None, help="Only vectors served for this model (`name` or `name@version`).")
@click.option("--since", default=None, help="Only vectors served since this time (ISO, UTC).")
@click.option("--threshold", type=float, default=0.2, show_default=True, help="Flag a feature whose PSI is above this.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def drift(obj: CliContext, training_set_id, model, since, threshold: float, as_json: bool) -> None:
    """Drift: served values' distribution against the training set's (PSI per feature, nulls included).

    The training set's profile was recorded when it was built. Exits 1 when a feature's PSI is above
    --threshold (0.1-0.2 is moderate, above 0.2 is drifted); features served fewer than 50 times are
    not judged.
    """
    store = obj.store()
    if training_set_id is None:
        from featurehouse.errors import FeaturehouseError

        if not model or "@" not in model:
            raise FeaturehouseError("give --training-set ts_..., or --model NAME@VERSION of a registered model version")
        training_set_id = store.lineage_log().model_version(model).training_set_id
    _land(store, obj.console)
    results = store.drift(training_set_id, model, _since(since))
    flagged = [r for r in results if r.flagged(threshold)]
    if as_json:
        emit_json([{**r.__dict__, "flagged": r in flagged} for r in results])
        sys.exit(1 if flagged else 0)
    table = Table(title=f"drift: served values vs training set {training_set_id}", title_justify="left")
    for col in ("feature", "served", "PSI", "null training", "null served", "mean training", "mean served", "status"):
        table.add_column(col, justify="left" if col in ("feature", "status") else "right")
    for r in results:
        status = "flagged" if r in flagged else ("skipped" if r.psi is None else "ok")
        table.add_row(r.feature, f"{r.served:,}", "-" if r.psi is None else f"{r.psi:.3f}", f"{r.null_rate_training:.1%}",
                      f"{r.null_rate_served:.1%}", "-" if r.mean_training is None else f"{r.mean_training:.4g}",
                      "-" if r.mean_served is None else f"{r.mean_served:.4g}", styled(status))
    obj.console.print(table)
    sys.exit(1 if flagged else 0)


@click.command("deploy-check")
@click.argument("ref", metavar="MODEL@VERSION")
@click.option("--parity-sample", type=click.IntRange(1, 100_000_000), default=1000, show_default=True,
              help="Entities per view for the parity gate.")
@click.option("--max-parity-mismatch", type=float, default=0.0, show_default=True)
@click.option("--max-skew", type=float, default=0.01, show_default=True, help="Largest share of served values allowed to differ.")
@click.option("--max-psi", type=float, default=0.2, show_default=True, help="Largest PSI allowed per feature.")
@click.option("--since", default=None, help="Judge skew and drift on vectors served since this time (ISO, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def deploy_check(obj: CliContext, ref, parity_sample, max_parity_mismatch, max_skew, max_psi, since, as_json) -> None:
    """Run every guardrail for the features MODEL@VERSION was trained on; exit 0 to deploy, 1 not to.

    \b
    Gates: schema (trained versions and types still there, contracts intact), freshness (each view
    within its SLO), parity (online equals the warehouse), skew (served equals point-in-time) and
    drift (served distributions near training). The verdict is stored online: serving by
    `?model=MODEL@VERSION` marks the vectors of a version that failed it.
    """
    from featurehouse.guard.deploy_check import Thresholds

    store = obj.store()
    with obj.console.status(f"checking {ref}"):
        report = store.deploy_check(ref, Thresholds(parity_sample, max_parity_mismatch, max_skew, max_psi), _since(since))
    if as_json:
        emit_json({"model": report.model, "training_set": report.training_set_id, "ok": report.ok,
                   "gates": [g.__dict__ for g in report.gates]})
        sys.exit(0 if report.ok else 1)
    table = Table(title=f"deploy check: {report.model} (trained on {report.training_set_id})", title_justify="left")
    for col in ("gate", "subject", "status", "detail"):
        table.add_column(col)
    for g in report.gates:
        table.add_row(g.gate, g.subject, styled(g.status), g.detail)
    obj.console.print(table)
    if report.ok:
        obj.console.print(f"[green]✓[/green] {report.model}: every gate passed or was skipped; safe to deploy")
    else:
        obj.console.print(f"[red]✗[/red] {report.model}: {len(report.failures)} gate(s) failed; do not deploy")
    sys.exit(0 if report.ok else 1)
