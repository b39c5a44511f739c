"""Shared CLI plumbing: the store a command works on, and errors as one line with an exit code cron and
CI can act on: 0 ok, 1 a guard fired (the guard commands exit so themselves), 2 a usage error, 3 a store
that cannot be had now (the warehouse down or locked by another process, the online store not answering),
4 featurehouse crashed (a bug: the traceback is printed).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from featurehouse.errors import FeaturehouseError, InfrastructureError

if TYPE_CHECKING:
    from featurehouse.store import FeatureStore


@dataclass
class CliContext:
    project_dir: Path
    profiles_dir: Path | None
    target: str | None
    console: Console = field(default_factory=lambda: _console())
    _store: FeatureStore | None = None

    def store(self) -> FeatureStore:
        from featurehouse.store import FeatureStore

        if self._store is None:
            self._store = FeatureStore(self.project_dir, self.target, self.profiles_dir)
        return self._store


def _console() -> Console:
    """Rich output; when piped (not a terminal), wide enough that tables are not cut."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


USAGE_ERROR = 2
UNAVAILABLE = 3
CRASHED = 4


class FeaturehouseGroup(click.Group):
    """User errors print one line naming the culprit and exit 2; a store that cannot be reached now prints
    one line naming it and exits 3, raised as ours or as the driver's own error; no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FeaturehouseError as e:
            unreachable = infrastructure_failure(e)
            click.echo(f"error: {unreachable or e}", err=True)
            sys.exit(USAGE_ERROR if unreachable is None else UNAVAILABLE)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # --help, a usage error click reports itself, Ctrl-C: click's own exits
        except Exception as e:
            from featurehouse.online.connect import cluster_node_error

            misaddressed = cluster_node_error(e)  # a single-server URL for a cluster node: the user's to fix
            if misaddressed is not None:
                click.echo(f"error: {misaddressed}", err=True)
                sys.exit(USAGE_ERROR)
            unreachable = infrastructure_failure(e)
            if unreachable is None:  # a bug: its traceback is what to report, and its own exit code, so a
                import traceback  # scheduler does not read it as a guard that fired (1)

                traceback.print_exc()
                click.echo(f"error: featurehouse crashed ({type(e).__name__}): a bug, please report the traceback "
                           "above", err=True)
                sys.exit(CRASHED)
            click.echo(f"error: {unreachable}", err=True)
            sys.exit(UNAVAILABLE)
        finally:
            obj = ctx.obj
            if isinstance(obj, CliContext) and obj._store is not None:
                obj._store.close()


def infrastructure_failure(error: BaseException) -> str | None:
    """One line saying which store could not be had, when that is what `error` is; None otherwise.
    Our stores' errors are raised `from None` over the driver's, which still says whether it was the
    connection (an online store that refused a command is not down)."""
    if isinstance(error, InfrastructureError):
        return _one_line(error)
    if isinstance(error, FeaturehouseError):
        driver = error.__cause__ or error.__context__
        return _one_line(error) if driver is not None and _driver_unreachable(driver) else None
    return _driver_unreachable(error)


def _driver_unreachable(error: BaseException) -> str | None:
    """A driver's own error for a store it cannot reach or a file another process holds. A driver that
    was never imported raised nothing, so none is imported here."""
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is not None and isinstance(error, (redis_errors.ConnectionError, redis_errors.TimeoutError)):
        return f"online store unreachable: {_one_line(error)}"
    if "duckdb" in sys.modules:
        from featurehouse.offline.warehouse import lock_conflict

        conflict = lock_conflict(error)
        if conflict is not None:
            return f"DuckDB file {conflict[0]} is held by another process ({conflict[1]})"
    psycopg2 = sys.modules.get("psycopg2")
    if psycopg2 is not None and isinstance(error, psycopg2.OperationalError):
        return f"warehouse unreachable: PostgreSQL: {_one_line(error)}"
    return None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
