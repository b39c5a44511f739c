"""`init`, `build` and `features list|show`: the registry as users see it."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from featurehouse.cli.context import CliContext
from featurehouse.durations import format_duration
from featurehouse.errors import ProjectError, UnknownFeature
from featurehouse.registry.model import FeatureRef, FeatureView

REPO_ROOT = Path(__file__).resolve().parents[2]

VARS_BLOCK = """
# featurehouse: entity types and their key columns, declared once (see `featurehouse features --help`).
vars:
  featurehouse:
    entities:
      user: [user_id]
"""


@click.command()
@click.pass_obj
def init(obj: CliContext) -> None:
    """Add featurehouse to an existing dbt project.

    Declares the `featurehouse` vars block (entity types) in dbt_project.yml and adds the featurehouse
    dbt package to packages.yml. Then mark a model as a feature view with
    `config(meta={'featurehouse': {'entity': 'user', 'event_time': 'updated_at'}})`.
    """
    project = obj.project_dir.resolve()
    config_path = project / "dbt_project.yml"
    if not config_path.is_file():
        raise ProjectError(f"no dbt_project.yml in {project} (pass --project-dir)")
    text = config_path.read_text(encoding="utf-8")
    done = []
    import yaml

    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ProjectError(f"{config_path}: not valid YAML: {e}") from None
    if "featurehouse" in (config.get("vars") or {}):
        done.append("dbt_project.yml already declares vars.featurehouse")
    elif "vars" not in config:
        config_path.write_text(text.rstrip("\n") + "\n" + VARS_BLOCK, encoding="utf-8")
        done.append("added vars.featurehouse.entities to dbt_project.yml")
    else:  # ruamel keeps the user's file as it was (comments, quotes, a flow-style `vars: {...}`)
        import io

        from ruamel.yaml import YAML

        rt = YAML()
        rt.preserve_quotes = True
        data = rt.load(text)
        data["vars"]["featurehouse"] = {"entities": {"user": ["user_id"]}}
        out = io.StringIO()
        rt.dump(data, out)
        config_path.write_text(out.getvalue(), encoding="utf-8")
        done.append("added featurehouse.entities under vars in dbt_project.yml")

    packages = project / "packages.yml"
    pkg_text = packages.read_text(encoding="utf-8") if packages.is_file() else "packages:\n"
    if "featurehouse" in pkg_text or str(REPO_ROOT) in pkg_text:
        done.append("packages.yml already lists featurehouse")
    elif (REPO_ROOT / "dbt_project.yml").is_file() and (REPO_ROOT / "macros").is_dir():
        packages.write_text(pkg_text.rstrip("\n") + f"\n  - local: {REPO_ROOT}  # featurehouse\n", encoding="utf-8")
        done.append(f"added the featurehouse dbt package ({REPO_ROOT}) to packages.yml")
    else:
        done.append("add the featurehouse dbt package to packages.yml (git: the featurehouse repository)")
    for line in done:
        obj.console.print(f"[green]✓[/green] {line}")
    obj.console.print("next: declare your entities, add meta.featurehouse to a model, then `featurehouse build`")


@click.command()
@click.option("--select", "-s", multiple=True, help="dbt node selection, as for `dbt build --select`.")
@click.pass_obj
def build(obj: CliContext, select: tuple[str, ...]) -> None:
    """Run `dbt build` (models and their tests), then load and validate the feature registry."""
    _refuse_absolute_paths(select)
    store = obj.store()
    store.build(select, quiet=False)
    _print_views(obj, list(store.registry.views.values()))


def _refuse_absolute_paths(select: tuple[str, ...]) -> None:
    """dbt selects paths relative to the project and meets an absolute one with a traceback of its own."""
    for value in select:
        for spec in value.replace(",", " ").split():
            path = spec.lstrip("@+0123456789").rstrip("+0123456789").removeprefix("path:")
            if path.startswith("/"):
                raise ProjectError(f"--select {value}: dbt selects paths relative to the project, "
                                   f"not absolute ones like {path}")


@click.group()
def features() -> None:
    """List and inspect feature views and features (read from dbt's manifest)."""


@features.command("list")
@click.option("--entity", default=None, help="Only features of this entity type.")
@click.option("--view", default=None, help="Only features of this view.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_features(obj: CliContext, entity: str | None, view: str | None, as_json: bool) -> None:
    """Every feature: `view.column@version`, its entity, type, owner, TTL, freshness SLO, sensitivity."""
    registry = obj.store().registry
    views = [v for v in registry.views.values()
             if (entity is None or v.entity.name == entity) and (view is None or v.name == view)]
    if entity is not None and entity not in registry.entities:
        raise UnknownFeature(f"unknown entity '{entity}' (declared: {', '.join(sorted(registry.entities))})")
    if view is not None and not views:
        registry.view(view)  # raises naming the view
    rows = [(v, f) for v in sorted(views, key=lambda v: (v.name, v.version)) for f in v.features]
    if as_json:
        click.echo(json.dumps([_feature_json(v, f) for v, f in rows], indent=2))
        return
    table = Table(title=f"{len(rows)} features in {len(views)} views", title_justify="left")
    for col in ("feature", "entity", "type", "owner", "ttl", "freshness slo", "sensitivity", "online"):
        table.add_column(col)
    for v, f in rows:
        table.add_row(f.versioned_name, v.entity.name, f.data_type or "?", v.owner or "-", format_duration(v.ttl),
                      format_duration(v.freshness_slo), v.sensitivity, "yes" if v.online else "no")
    obj.console.print(table)


@features.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show(obj: CliContext, name: str, as_json: bool) -> None:
    """Details of a view (`user_txn_stats`, `user_txn_stats@2`) or a feature (`user_txn_stats.txn_count_1h`)."""
    registry = obj.store().registry
    if "." in name:
        view, feature = registry.resolve(FeatureRef.parse(name))
        columns = [feature]
    else:
        base, _, version = name.partition("@")
        view = registry.view(base, int(version) if version.isdigit() else None)
        columns = list(view.features)
    if as_json:
        click.echo(json.dumps({**_view_json(view), "features": [_feature_json(view, f) for f in columns]}, indent=2))
        return
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    for key, value in {**_view_json(view), "versions": [str(x) for x in registry.versions(view.name)]}.items():
        info.add_row(key, ", ".join(value) if isinstance(value, list) else str(value if value not in (None, "") else "-"))
    obj.console.print(info)
    table = Table(title_justify="left")
    for col in ("feature", "type", "description"):
        table.add_column(col)
    for f in columns:
        table.add_row(f.versioned_name, f.data_type or "?", f.description or "")
    obj.console.print(table)


def _view_json(v: FeatureView) -> dict:
    return {
        "view": v.name, "version": v.version,
        "entity": v.entity.name, "keys": list(v.entity.keys), "event_time": v.event_time, "created_at": v.created_at,
        "owner": v.owner, "freshness_slo": format_duration(v.freshness_slo), "ttl": format_duration(v.ttl),
        "serving_delay": format_duration(v.serving_delay), "as_known_at": v.as_known_at,
        "sensitivity": v.sensitivity, "online": v.online, "tags": list(v.tags), "description": v.description,
        "relation": ".".join(v.relation.parts()), "dbt_node": v.unique_id, "checksum": v.checksum,
        "upstream": list(v.depends_on), "file": v.original_file_path,
    }


def _feature_json(v: FeatureView, f) -> dict:
    return {"name": f.name, "version": f.version, "data_type": f.data_type, "entity": v.entity.name,
            "owner": v.owner, "ttl": format_duration(v.ttl), "freshness_slo": format_duration(v.freshness_slo),
            "sensitivity": v.sensitivity, "online": v.online, "description": f.description}


def _print_views(obj: CliContext, views: list[FeatureView]) -> None:
    table = Table(title=f"feature registry: {len(views)} views", title_justify="left")
    for col in ("view", "entity", "features", "ttl", "freshness slo", "owner"):
        table.add_column(col)
    for v in sorted(views, key=lambda v: (v.name, v.version)):
        table.add_row(v.versioned_name, v.entity.name, str(len(v.features)), format_duration(v.ttl),
                      format_duration(v.freshness_slo), v.owner or "-")
    obj.console.print(table)
