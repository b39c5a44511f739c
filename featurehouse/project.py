"""The dbt project featurehouse works in: its files, its profile target, and running dbt in-process."""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from featurehouse.errors import ProjectError

WATCHED = ("models", "macros", "snapshots", "seeds", "analyses", "tests")


# dbt commands that open no connection: a Spark target's session need not start for them.
_OFFLINE_DBT_COMMANDS = frozenset({"deps", "parse", "clean", "list", "ls", "debug", "init"})


@dataclass(frozen=True)
class Target:
    """The profile target: its settings as dbt renders them, e.g. {'type': 'duckdb', 'path': ...}, and, when the
    target's dbt adapter is installed, that adapter's credentials (e.g. PostgresCredentials), which hold dbt's
    defaults (port type, connect_timeout, search_path...) so that nobody has to guess them again."""

    name: str
    settings: dict[str, Any]
    credentials: Any = field(default=None, compare=False)

    @property
    def type(self) -> str:
        return str(self.settings.get("type", ""))

    def __repr__(self) -> str:
        """Name and type only: the settings and credentials may hold a password (a secret env var's value)."""
        return f"Target(name={self.name!r}, type={self.type!r})"


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
        self._target_checked = False

    def _no_profile(self) -> str:
        """Why dbt cannot run here, and what to pass: the featurehouse package itself is not a project to run."""
        if self.name == "featurehouse" and (self.dir / "macros" / "point_in_time_join.sql").is_file():
            return (f"{self.dir} is featurehouse's own dbt package, not an analytics project: pass --project-dir "
                    f"{self.dir / 'dbt_project'} (the example, after `featurehouse demo`) or your own project")
        return (f"no profiles.yml in {self.profiles_dir}: dbt needs one to run project {self.dir} (put profiles.yml in "
                "the project, pass --profiles-dir, or set DBT_PROFILES_DIR)")

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
        """The profile target, rendered by dbt's own profile renderer, so env_var(), var(), secret env vars and
        the as_number / as_bool / as_native filters behave exactly as in `dbt run`; like dbt, only the chosen
        target is rendered (an env var that only another target uses need not be set)."""
        profile_name, profile, path = self._profile()
        name, settings = contextvars.copy_context().run(_render_target, profile, profile_name, self.target_name, path)
        credentials = None
        if _adapter_installed(settings.get("type")):
            credentials = adapter_credentials(settings, profile_name, name, where=str(path))
        return Target(name, settings, credentials)

    def _profile(self) -> tuple[str, dict[str, Any], Path]:
        """The project's profile (name, its unrendered YAML, the file), or ProjectError naming what is missing."""
        profile_name = str(self.config.get("profile") or self.name)
        path = self.profiles_dir / "profiles.yml"
        if not path.is_file():
            raise ProjectError(f"no profiles.yml in {self.profiles_dir} (set DBT_PROFILES_DIR)")
        profile = _read_yaml(path).get(profile_name)
        if not profile:
            raise ProjectError(f"profile '{profile_name}' not found in {path}")
        return profile_name, profile, path

    def check_target(self) -> None:
        """A target chosen by name (--target, FEATUREHOUSE_TARGET) must be one of the profile's, as dbt requires:
        checked before the manifest is read or dbt is run, so a command that needs no connection (a registry
        read from a fresh manifest, a project without feature views yet) does not quietly run on the manifest
        of another target, and dbt's own refusal (several lines) is not what the user reads."""
        if not self.target_name or self._target_checked:
            return
        profile_name, profile, _ = self._profile()
        outputs = profile.get("outputs") or {}
        if not isinstance(outputs, dict) or self.target_name not in outputs:
            known = ", ".join(map(str, outputs)) if isinstance(outputs, dict) else ""
            raise ProjectError(f"target '{self.target_name}' not found in profile '{profile_name}' "
                               f"(targets: {known or 'none'})")
        self._target_checked = True

    def dbt_args(self) -> list[str]:
        args = ["--project-dir", str(self.dir), "--profiles-dir", str(self.profiles_dir)]
        if self.target_name:
            args += ["--target", self.target_name]
        return args

    def run_dbt(self, command: list[str], quiet: bool = True) -> Any:
        """Run a dbt command in this process (5x faster than the CLI); raise ProjectError if it fails."""
        if not (self.profiles_dir / "profiles.yml").is_file():
            raise ProjectError(self._no_profile())
        from dbt.cli.main import dbtRunner

        self.check_target()
        if command and command[0] not in _OFFLINE_DBT_COMMANDS:
            self._start_spark_session()
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

    def _start_spark_session(self) -> None:
        """On a dbt-spark `method: session` target, start this process's SparkSession with featurehouse's settings
        (featurehouse.offline.warehouse.spark_conf) before dbt runs: dbt-spark would start it with the profile's
        server_side_parameters alone (tables and metastore in the working directory), and then build tables
        featurehouse does not read."""
        target = self.target()
        if target.type == "spark" and str(target.settings.get("method", "")).lower() == "session":
            from featurehouse.offline.warehouse import spark_conf, spark_session

            (self.dir / ".featurehouse" / "spark").mkdir(parents=True, exist_ok=True)
            spark_session(spark_conf(target.settings, self.dir))

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
        self.check_packages()

    def check_packages(self) -> None:
        """The featurehouse dbt package installed in the project must be this featurehouse's version."""
        from featurehouse.packaging import check_dbt_package

        check_dbt_package(self.dir, self.config)

    def manifest(self, refresh: bool = False) -> dict[str, Any]:
        """dbt's manifest, parsed again when any project file changed since it was written."""
        self.check_target()
        if refresh or self.manifest_is_stale():
            self.ensure_packages()
            self.run_dbt(["parse"])
        else:
            self.check_packages()  # e.g. featurehouse upgraded with pip since the last parse
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


def _read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file as plain data; Jinja in it is left alone (dbt renders profiles.yml value by value, after
    parsing it: see `_render_target`)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ProjectError(f"{path}: not valid YAML: {e}") from None


def _render_target(profile: dict[str, Any], profile_name: str, target_name: str | None,
                   path: Path) -> tuple[str, dict[str, Any]]:
    """The chosen target's name and its rendered settings, rendered the two-step way dbt renders a profile
    (dbt.config.profile.Profile.render_profile): first the target name, then that output alone.

    dbt's renderer reads env vars through dbt's invocation context, a context variable: call this in a copy
    of the current context (contextvars.copy_context().run) so the snapshot of os.environ taken here never
    leaks into a later dbt run in this process."""
    from dbt.config.profile import Profile
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(os.environ)
    renderer = ProfileRenderer({})  # dbt renders profiles with --vars only, never the project's vars
    with _dbt_errors(str(path)):
        name = target_name or (renderer.render_value(profile["target"]) if "target" in profile else "default")
        outputs = profile.get("outputs") or {}
        if name not in outputs:
            raise ProjectError(f"target '{name}' not found in profile '{profile_name}' (targets: {', '.join(outputs)})")
        _, settings = Profile.render_profile(profile, profile_name, name, renderer)
    return name, settings


def adapter_credentials(settings: dict[str, Any], profile_name: str = "featurehouse", target_name: str = "target",
                        where: str = "profiles.yml") -> Any:
    """The dbt adapter's Credentials for a rendered target, made by dbt itself: its aliases (pass, dbname),
    its validation (a port must be a number) and its defaults, so a connection of ours sees what dbt's sees."""
    from dbt.config.profile import Profile

    data = {k: v for k, v in settings.items() if k != "threads"}  # threads is dbt's, not the connection's
    with _dbt_errors(where):
        return Profile._credentials_from_profile(data, profile_name, target_name)


def _adapter_installed(adapter_type: Any) -> bool:
    """Whether dbt has an adapter for this target type; a target of another warehouse still has settings
    (the error that names the supported warehouses comes later, when a connection is asked for)."""
    if not adapter_type or not str(adapter_type).isidentifier():
        return False
    try:
        return importlib.util.find_spec(f"dbt.adapters.{adapter_type}") is not None
    except ImportError:
        return False


@contextlib.contextmanager
def _dbt_errors(where: str):
    """dbt's profile errors as one-line ProjectErrors naming the file, instead of a traceback."""
    from dbt.exceptions import EnvVarMissingError
    from dbt_common.exceptions import DbtBaseException

    try:
        yield
    except EnvVarMissingError as e:
        raise ProjectError(f"{where}: env var '{e.var}' is not set and has no default") from None
    except DbtBaseException as e:
        message = " ".join(str(getattr(e, "msg", None) or e).split())
        raise ProjectError(f"{where}: {message}") from None


def _first_error(result: Any) -> str:
    for r in getattr(result, "results", None) or []:
        if getattr(r, "status", None) in ("error", "fail"):
            return f"{getattr(r.node, 'name', '?')}: {r.message}"
    return "see dbt's log above"
