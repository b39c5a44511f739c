"""Shared CLI plumbing: the store a command works on, and errors as one line with exit code 2."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from featurehouse.errors import FeaturehouseError

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


class FeaturehouseGroup(click.Group):
    """User errors print one line naming the culprit and exit 2; no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FeaturehouseError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        finally:
            obj = ctx.obj
            if isinstance(obj, CliContext) and obj._store is not None:
                obj._store.close()
