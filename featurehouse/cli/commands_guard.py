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
    """Schema gate: fail if a published feature version's columns or types changed.

    A view@version is published once it was synced, backfilled, promoted or used in a recorded training
    set. dbt compiles the feature views and the warehouse describes the compiled SQL (nothing is built),
    so run this in CI before `dbt build`. A new version always passes; so do metadata-only edits (owner,
    SLO, description). Exits 1 naming view, column, old and new type and the version to bump to.
    """
    from featurehouse.guard.schema_gate import check as run_check

    store = obj.store()
    with obj.console.status("compiling feature views and describing their SQL" if not no_compile else "reading schemas"):
        result = run_check(store, compile_sql=not no_compile)
    if as_json:
        emit_json({"ok": result.ok, "views": [r.__dict__ for r in result.rows],
                   "changes": [{**c.__dict__, "message": c.message} for c in result.changes]})
    else:
        table = Table(title="schema gate: published feature versions", title_justify="left")
        for col in ("view@version", "status", "detail"):
            table.add_column(col)
        for r in result.rows:
            table.add_row(f"{r.view}@{r.version}", styled(r.status), r.detail)
        obj.console.print(table)
        for c in result.changes:
            obj.console.print(f"[red]✗[/red] {c.message}")
        if result.ok:
            obj.console.print("[green]✓[/green] no published schema changed")
    sys.exit(0 if result.ok else 1)
