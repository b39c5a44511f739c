"""`featurehouse push`, `featurehouse stream`, `featurehouse push-api`: seconds-fresh features."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click
from rich.table import Table

from featurehouse.cli.context import CliContext
from featurehouse.errors import FeaturehouseError


def _read_rows(path: Path) -> list[dict]:
    """Rows to push from a file; a file that cannot be read (or decoded as UTF-8) is one line naming it."""
    try:
        return _parse_rows(path)
    except UnicodeDecodeError as e:
        raise FeaturehouseError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise FeaturehouseError(f"{path}: cannot be read: {e.strerror or e}") from None


def _parse_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise FeaturehouseError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise FeaturehouseError(f"{path}:{n}: not JSON: {e}") from None
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, RecursionError) as e:
            raise FeaturehouseError(f"{path}: not JSON: {e}") from None
        rows = data.get("rows") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise FeaturehouseError(f'{path}: expected a JSON list of rows, or {{"rows": [...]}}, got {type(data).__name__}')
        return rows
    if suffix == ".csv":
        import pyarrow.csv as pacsv

        return _read_with(path, "CSV", lambda: pacsv.read_csv(path).to_pylist())
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return _read_with(path, "Parquet", lambda: pq.read_table(path).to_pylist())
    raise FeaturehouseError(f"{path}: use .jsonl, .json, .csv or .parquet")


def _read_with(path: Path, kind: str, read) -> list[dict]:
    """A file Arrow cannot read (empty, corrupt, not that format) is one line naming it."""
    import pyarrow as pa

    try:
        return read()
    except (pa.ArrowException, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FeaturehouseError(f"{path}: not a readable {kind} file: {first}") from None


@click.command()
@click.argument("view")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def push(obj: CliContext, view: str, file: Path) -> None:
    """Append FILE's rows (.jsonl, .json, .csv, .parquet) to VIEW's durable stream.

    Each row needs the entity key columns, the event time and every feature of the view (null for NULL;
    a view with `partial_push: true` takes rows that leave features out); created_at is set to the time
    featurehouse takes the row. Rows that
    fail validation are parked in the view's dead-letter stream with the reason, listed here, and
    make the command exit 2. `featurehouse stream` applies accepted rows.
    """
    name, _, version = view.partition("@")
    result = obj.store().push(name, _read_rows(file), int(version) if version.isdigit() else None)
    obj.console.print(f"[green]✓[/green] {result.accepted:,} rows appended to {view}'s stream")
    if result.rejected:
        for row, reason in result.rejected[:10]:
            obj.console.print(f"[red]rejected row {row}[/red]: {reason}")
        raise FeaturehouseError(f"{len(result.rejected)} rows rejected (parked in the dead-letter stream)")


@click.command()
@click.option("--select", "-s", multiple=True, help="Only these views (default: every online view).")
@click.option("--consumer", default="consumer-1", show_default=True, help="This consumer's name in the group.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--max-deliveries", type=click.IntRange(1, 1_000_000), default=5, show_default=True,
              help="Deliveries after which an entry that keeps failing goes to the view's dead-letter stream.")
@click.option("--once", is_flag=True, help="Apply what is waiting, then exit.")
@click.pass_obj
def stream(obj: CliContext, select: tuple[str, ...], consumer: str, batch_size: int, max_deliveries: int,
           once: bool) -> None:
    """Run a stream consumer: pushed rows to the warehouse, then the online store (guarded).

    Acknowledges a batch only after both writes; a restarted consumer re-applies its pending entries
    first, and claims entries a dead consumer left behind. An entry that fails MAX_DELIVERIES times
    is moved to the view's dead-letter stream with its reason. A Redis outage is waited out (one line
    when it starts, one when it ends). Records its lag for serving's stale flag.
    """
    member = obj.store().stream_consumer(select, name=consumer, batch_size=batch_size, max_deliveries=max_deliveries)
    if once:
        _drain(member)
    else:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        obj.console.print(f"consuming {', '.join(v.versioned_name for v in member.views)} as '{consumer}' (Ctrl-C stops)")
        try:
            member.run(stop, report=lambda line: obj.console.print(line, markup=False, highlight=False))
        except KeyboardInterrupt:
            pass
    for reason in member.set_aside.values():
        obj.console.print(f"[red]set aside[/red]: {reason}", highlight=False)
    s = member.stats
    table = Table(title="stream consumer", title_justify="left")
    for col in ("rows applied", "written", "skipped (older)", "batches", "dead-lettered"):
        table.add_column(col, justify="right")
    table.add_row(f"{s.processed:,}", f"{s.written:,}", f"{s.skipped_older:,}", f"{s.batches:,}", f"{s.dead_lettered:,}")
    obj.console.print(table)


def _drain(member) -> None:
    """--once: apply what is waiting; a store down is one line, exit 3 (there is no run to wait in)."""
    while member.run_once():
        pass


@click.command("push-api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--max-body-bytes", type=click.IntRange(1024, 1 << 30), default=16 << 20, show_default=True,
              help="Largest request body taken; a larger one is a 413, refused before it is read.")
@click.option("--body-timeout", type=click.FloatRange(0, 3600, min_open=True), default=10.0, show_default=True,
              help="Seconds a request body has to arrive; a slower one is a 408.")
@click.option("--auth", type=click.Choice(["token", "none"]), default="token", show_default=True,
              help="Bearer tokens with the push scope (`featurehouse token create --scopes push`); 'none' only on "
                   "a loopback host.")
@click.pass_obj
def push_api(obj: CliContext, host: str, port: int, max_body_bytes: int, body_timeout: float, auth: str) -> None:
    """Serve POST /v1/push/{view} over HTTP (JSON rows; 422 names the bad row and field).

    A body over --max-body-bytes is refused with 413 (by its Content-Length before it is read, else as
    soon as it passes the limit); a 503 says only that the online store is unreachable or slow (the
    cause goes to the log, with the request id).
    """
    import uvicorn

    from featurehouse.access.http import check_auth_mode
    from featurehouse.stream.http import create_push_app

    auth = check_auth_mode(auth, host)
    uvicorn.run(create_push_app(obj.store(), max_body_bytes=max_body_bytes, body_timeout_s=body_timeout, auth=auth),
                host=host, port=port, log_level="warning")
