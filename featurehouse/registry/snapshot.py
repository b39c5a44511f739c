"""A loaded registry handed to other processes: `featurehouse serve` loads it once (registry/loader.py)
and its workers read this file, so a worker's registry is the parent's and a worker imports nothing
of dbt, sqlglot or the warehouse drivers to get it."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

from featurehouse.errors import ProjectError
from featurehouse.registry.model import Registry


def save_snapshot(registry: Registry, path: str | os.PathLike) -> Path:
    """Write a loaded registry for other processes of the same installation (serving workers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
        pickle.dump(registry, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(f.name, path)  # a worker never reads half a file
    return path


def load_snapshot(path: str | os.PathLike) -> Registry:
    """A registry written by `save_snapshot` (trusted: written by this installation's own parent process)."""
    try:
        with open(path, "rb") as f:
            registry = pickle.load(f)  # noqa: S301 - our own file, written under the project's .featurehouse/
    except (OSError, pickle.UnpicklingError, EOFError) as e:
        raise ProjectError(f"cannot read the registry snapshot {path}: {e}") from None
    if not isinstance(registry, Registry):
        raise ProjectError(f"{path} does not hold a featurehouse registry")
    return registry
