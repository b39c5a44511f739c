"""`import-feast`: a Feast repository becomes dbt sources, feature-view models and exposures."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import yaml
from rich.markup import escape
from rich.table import Table

from featurehouse.cli.commands_features import add_featurehouse
from featurehouse.cli.context import CliContext
from featurehouse.errors import ProjectError

_OUTCOME_STYLE = {"translated": "green", "partly translated": "yellow", "not translated": "red"}


@click.command("import-feast")
@click.argument("repo_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--models-dir", default="models/feast", show_default=True,
              help="Where in the dbt project the imported models go.")
@click.option("--local", is_flag=True, help="As for `init`: list the featurehouse dbt package by its path here.")
@click.option("--force", is_flag=True, help="Overwrite the files of an earlier import in --models-dir, and remove "
                                            "the models it wrote for views no longer in the repository.")
@click.option("--rename-entity", "renames", multiple=True, metavar="FEAST=OURS",
              help="Import a Feast entity under another entity type name (e.g. one the project already declares "
                   "with other keys). Repeatable.")
@click.option("--dry-run", is_flag=True, help="Print the report and the files it would write; write nothing.")
@click.option("--strict", is_flag=True, help="Exit 1 when a definition was not (fully) translated (after writing).")
@click.pass_obj
def import_feast(obj: CliContext, repo_dir: Path, models_dir: str, local: bool, force: bool, renames: tuple[str, ...],
                 dry_run: bool, strict: bool) -> None:
    """Import a Feast repository (the directory with feature_store.yaml) into a dbt project.

    Reads the repository's Python without running it: Entities become entity types in
    vars.featurehouse.entities, each FeatureView's batch source a dbt source, the view a model with
    meta.featurehouse (entity, event time, created timestamp, TTL, online, owner, tags), each
    FeatureService an exposure listing its features. Feast's point-in-time rule is featurehouse's, and
    `full_feature_names=True` column names (`view__feature`) are featurehouse's, so a training set keeps
    its values and names. On-demand transforms, stream aggregations and anything not readable without
    running the code are listed in the report (and in FEAST_IMPORT.md), never dropped silently.

    Writes into the dbt project of --project-dir; where there is none, creates one (DuckDB, reading
    Feast's Parquet files in place).
    """
    from featurehouse import packaging
    from featurehouse.migrate.feast_dbt import Options, translate
    from featurehouse.migrate.feast_repo import read_repo

    repo = read_repo(repo_dir)
    project = obj.project_dir.resolve()
    config_path = project / "dbt_project.yml"
    existing: dict[str, list[str]] = {}
    if config_path.is_file():
        data = packaging.load(config_path, packaging.read_text(config_path)).data or {}
        declared = ((data.get("vars") or {}).get("featurehouse") or {}).get("entities") or {}
        existing = {str(k): [v] if isinstance(v, str) else list(v) for k, v in declared.items()
                    if isinstance(v, (str, list))}
    rename: dict[str, str] = {}
    for text in renames:
        feast_name, sep, ours = text.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ours.strip()) or not feast_name.strip():
            raise ProjectError(f"--rename-entity {text}: write FEAST=OURS, e.g. rider=feast_rider")
        rename[feast_name.strip()] = ours.strip()
    translation = translate(repo, existing, Options(rename=rename, project_dir=project))
    target = (project / models_dir).resolve()
    if project not in target.parents and target != project:
        raise ProjectError(f"--models-dir {models_dir} is outside the dbt project {project}")
    files = translation.files()
    clash = sorted(name for name in files if (target / name).exists())
    stale = sorted(p for p in target.glob("*.sql") if p.name not in files and _written_by_import(p))
    _print_report(obj, translation)
    if dry_run:
        for name in files:
            obj.console.print(f"would write {escape(str(target / name))}")
        for path in stale:
            obj.console.print(f"would remove {escape(str(path))} (with --force: no longer in the Feast repository)")
        if translation.entities:
            obj.console.print("would declare entity types " + ", ".join(
                f"{k}: [{', '.join(v)}]" for k, v in translation.entities.items()) + f" in {config_path}")
        return
    if clash and not force:
        raise ProjectError(f"{target} already has {', '.join(clash)} (an earlier import?): pass --force to overwrite "
                           "them, or --models-dir to import elsewhere")
    if not translation.models:
        raise ProjectError(f"nothing in {repo.root} could be translated: see the report above")

    if not config_path.is_file():
        _new_project(obj, project, repo.project, translation.entities, repo.config)
    # a featurehouse entry already in packages.yml (git or local) is left as it is, unless --local
    add_featurehouse(obj, project, local, translation.entities, quiet_next=True, keep_package=not local)
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
    for path in stale if force else []:  # an earlier import's model whose view left the repository
        path.unlink()
        obj.console.print(f"[green]✓[/green] removed {escape(str(path.relative_to(project)))}: its view is no "
                          "longer in the Feast repository")
    rel = target.relative_to(project)
    obj.console.print(f"[green]✓[/green] wrote {len(translation.models)} models, "
                      f"{len(translation.exposures)} exposures and the report to {escape(str(rel))}/ "
                      f"({escape(str(rel / 'FEAST_IMPORT.md'))})")
    obj.console.print("next: `dbt deps`, then `featurehouse build` and `featurehouse training-set`")
    left = translation.untranslated()
    if strict and left:  # a check that fired, as the guards exit: 1, not a usage error
        obj.console.print(f"--strict: {len(left)} Feast definitions were not fully translated (see the report)")
        sys.exit(1)


def _written_by_import(path: Path) -> bool:
    """A model file an earlier import wrote (its first line says so): only those are ever removed."""
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    return first.startswith("-- Feast ") and "imported by `featurehouse import-feast`" in first


def _print_report(obj: CliContext, translation) -> None:
    table = Table(title=f"Feast project {translation.project}", title_justify="left")
    for col in ("Feast definition", "Name", "Where", "Outcome", "Detail"):
        table.add_column(col, overflow="fold")
    for f in translation.findings:
        style = _OUTCOME_STYLE.get(f.outcome, "")
        table.add_row(f.kind, escape(f.name), escape(str(f.where or "")), f"[{style}]{f.outcome}[/{style}]",
                      escape(f.detail))
    obj.console.print(table)
    left = translation.untranslated()
    if left:
        obj.console.print(f"{len(left)} of {len(translation.findings)} not fully translated: each says what to do")


def _new_project(obj: CliContext, project: Path, feast_project: str, entities: dict[str, list[str]],
                 feast_config: dict) -> None:
    """A dbt project for the import when --project-dir has none: DuckDB, one profile, the imported entities."""
    name = re.sub(r"\W+", "_", feast_project).strip("_").lower() or "feast_import"
    if name[0].isdigit():
        name = "p_" + name
    project.mkdir(parents=True, exist_ok=True)
    config = {"name": name, "version": "1.0.0", "config-version": 2, "profile": name,
              "model-paths": ["models"], "macro-paths": ["macros"], "clean-targets": ["target", "dbt_packages"],
              "flags": {"send_anonymous_usage_stats": False},
              "vars": {"featurehouse": {"entities": entities}}}
    text = (f"# The dbt project for the Feast project `{feast_project}`, written by `featurehouse import-feast`.\n"
            + yaml.safe_dump(config, sort_keys=False, default_flow_style=None))
    (project / "dbt_project.yml").write_text(text, encoding="utf-8")
    obj.console.print(f"[green]✓[/green] created the dbt project {escape(name)} in {escape(str(project))}")
    if not (project / "profiles.yml").exists():
        outputs = {"duckdb": {"type": "duckdb",
                              "path": "{{ env_var('FEATUREHOUSE_DUCKDB_PATH', '.featurehouse/warehouse.duckdb') }}",
                              "threads": 2}}
        offline = feast_config.get("offline_store") or {}
        if isinstance(offline, dict) and offline.get("type") == "postgres":
            outputs["postgres"] = {"type": "postgres", "host": str(offline.get("host", "127.0.0.1")),
                                   "port": int(offline.get("port", 5432)), "user": str(offline.get("user", "postgres")),
                                   "password": "{{ env_var('FEATUREHOUSE_PG_PASSWORD', '') }}",
                                   "dbname": str(offline.get("database", "postgres")),
                                   "schema": str(offline.get("db_schema", "public")), "threads": 2}
        profiles = {name: {"target": "duckdb", "outputs": outputs}}
        (project / ".featurehouse").mkdir(exist_ok=True)  # dbt-duckdb creates the file, not its directory
        (project / "profiles.yml").write_text(
            "# Written by `featurehouse import-feast`: DuckDB here; add your warehouse as another output.\n"
            + yaml.safe_dump(profiles, sort_keys=False), encoding="utf-8")
        obj.console.print("[green]✓[/green] wrote profiles.yml (DuckDB in .featurehouse/)")
