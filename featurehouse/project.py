"""The dbt project featurehouse works in: its files, its profile target, and running dbt in-process."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from featurehouse.errors import ProjectError

WATCHED = ("models", "macros", "snapshots", "seeds", "analyses", "tests")


@dataclass(frozen=True)
class Target:
    """The profile target's settings (rendered), e.g. {'type': 'duckdb', 'path': ...}."""

    name: str
    settings: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.settings.get("type", ""))


class DbtProject:
    """A dbt project on disk. It reads files only; dbt itself is run through `run_dbt`."""

    def __init__(self, project_dir: str | os.PathLike = ".", profiles_dir: str | os.PathLike | None = None,
                 target: str | None = None):
        self.dir = Path(project_dir).resolve()
        if not (self.dir / "dbt_project.yml").is_file():
            raise ProjectError(f"no dbt_project.yml in {self.dir} (pass --project-dir)")
        self.config = _read_yaml(self.dir / "dbt_project.yml")
        if profiles_dir is None:
            profiles_dir = os.environ.get("DBT_PROFILES_DIR") or (
                self.dir if (self.dir / "profiles.yml").is_file() else Path.home() / ".dbt"
            )
        self.profiles_dir = Path(profiles_dir).resolve()
        self.target_name = target or os.environ.get("FEATUREHOUSE_TARGET")

    @property
    def name(self) -> str:
        return str(self.config.get("name"))

    @property
    def featurehouse_vars(self) -> dict[str, Any]:
        return (self.config.get("vars") or {}).get("featurehouse") or {}

    @property
    def target_dir(self) -> Path:
        return self.dir / str(self.config.get("target-path", "target"))

    @property
    def manifest_path(self) -> Path:
        return self.target_dir / "manifest.json"

    def target(self) -> Target:
        """The profile target, rendered with env_var() the way dbt renders it."""
        profile_name = self.config.get("profile") or self.name
        path = self.profiles_dir / "profiles.yml"
        if not path.is_file():
            raise ProjectError(f"no profiles.yml in {self.profiles_dir} (set DBT_PROFILES_DIR)")
        profiles = _read_yaml(path, render=True)
        profile = profiles.get(profile_name)
        if not profile:
            raise ProjectError(f"profile '{profile_name}' not found in {path}")
        name = self.target_name or profile.get("target")
        outputs = profile.get("outputs") or {}
        if name not in outputs:
            raise ProjectError(f"target '{name}' not found in profile '{profile_name}' (targets: {', '.join(outputs)})")
        return Target(name, dict(outputs[name]))

    def dbt_args(self) -> list[str]:
        args = ["--project-dir", str(self.dir), "--profiles-dir", str(self.profiles_dir)]
        if self.target_name:
            args += ["--target", self.target_name]
        return args

    def run_dbt(self, command: list[str], quiet: bool = True) -> Any:
        """Run a dbt command in this process (5x faster than the CLI); raise ProjectError if it fails."""
        from dbt.cli.main import dbtRunner

        flags = ["--quiet"] if quiet else []
        with contextlib.chdir(self.dir):
            try:
                result = dbtRunner().invoke(flags + command + self.dbt_args())
            finally:
                _release_dbt_duckdb()
        if not result.success:
            detail = result.exception or _first_error(result.result)
            raise ProjectError(f"dbt {' '.join(command)} failed in {self.dir}: {detail}")
        return result

    def manifest_is_stale(self) -> bool:
        if not self.manifest_path.is_file():
            return True
        built = self.manifest_path.stat().st_mtime
        candidates = [self.dir / "dbt_project.yml", self.dir / "packages.yml", self.profiles_dir / "profiles.yml"]
        for sub in WATCHED:
            root = self.dir / sub
            if root.is_dir():
                candidates.extend(p for p in root.rglob("*") if p.is_file())
        # a local package (such as featurehouse itself) counts too
        for pkg in (self.dir / "dbt_packages").glob("*") if (self.dir / "dbt_packages").is_dir() else []:
            for sub in ("macros", "models"):
                if (pkg / sub).is_dir():
                    candidates.extend(p for p in (pkg / sub).rglob("*") if p.is_file())
        return any(p.is_file() and p.stat().st_mtime > built for p in candidates)

    def built_at(self, unique_id: str):
        """When dbt last built a node successfully, from target/run_results.json (None when unknown)."""
        from datetime import datetime

        path = self.target_dir / "run_results.json"
        if not unique_id or not path.is_file():
            return None
        try:
            results = json.loads(path.read_text(encoding="utf-8")).get("results", [])
        except (OSError, json.JSONDecodeError):
            return None
        for r in results:
            if r.get("unique_id") == unique_id and r.get("status") == "success":
                for t in r.get("timing", []):
                    if t.get("name") == "execute" and t.get("completed_at"):
                        return datetime.fromisoformat(t["completed_at"].replace("Z", "+00:00")).replace(tzinfo=None)
        return None

    def ensure_packages(self) -> None:
        if (self.dir / "packages.yml").is_file() and not (self.dir / "dbt_packages").is_dir():
            self.run_dbt(["deps"])

    def manifest(self, refresh: bool = False) -> dict[str, Any]:
        """dbt's manifest, parsed again when any project file changed since it was written."""
        if refresh or self.manifest_is_stale():
            self.ensure_packages()
            self.run_dbt(["parse"])
        with open(self.manifest_path, encoding="utf-8") as f:
            return json.load(f)


def _release_dbt_duckdb() -> None:
    """dbt-duckdb keeps one DuckDB environment per process and reuses it while the profile's settings
    are equal: a relative `path` is equal in two projects, so a second project's build would run in
    the first project's file. Closing it after every dbt call also frees the file for our own reads."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed: nothing cached
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort; dropping the reference is what matters
                pass
        DuckDBConnectionManager.close_all_connections()


def _read_yaml(path: Path, render: bool = False) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if render:
        import jinja2

        def env_var(name: str, default: str | None = None) -> str:
            if name in os.environ:
                return os.environ[name]
            if default is None:
                raise ProjectError(f"{path}: env var '{name}' is not set and has no default")
            return default

        text = jinja2.Environment().from_string(text).render(env_var=env_var)
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ProjectError(f"{path}: not valid YAML: {e}") from None


def _first_error(result: Any) -> str:
    for r in getattr(result, "results", None) or []:
        if getattr(r, "status", None) in ("error", "fail"):
            return f"{getattr(r.node, 'name', '?')}: {r.message}"
    return "see dbt's log above"
