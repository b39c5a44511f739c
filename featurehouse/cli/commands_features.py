"""`init`, `build` and `features list|show`: the registry as users see it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from featurehouse.cli.context import CliContext
from featurehouse.durations import format_duration
from featurehouse.errors import ProjectError, UnknownFeature
from featurehouse.registry.model import FeatureRef, FeatureView

VARS_COMMENT = "featurehouse: entity types and their key columns, declared once (see `featurehouse features --help`)."
VARS_BLOCK = ["featurehouse:", "  entities:", "    user: [user_id]  # your entity types and their key columns"]
VARS_FLOW = "{entities: {user: [user_id]}}"
IGNORED = ".featurehouse/"
MAX_FEATURE_ROWS = 500  # `features list` draws one row per feature up to this many, else one per view


@click.command()
@click.option("--local", is_flag=True, help="List the featurehouse dbt package by its path on this machine "
                                            "(`local:`, for developing featurehouse) instead of git at this version.")
@click.pass_obj
def init(obj: CliContext, local: bool) -> None:
    """Add featurehouse to an existing dbt project.

    Declares the `featurehouse` vars block (entity types) in dbt_project.yml, lists the featurehouse dbt package in
    packages.yml (git, pinned to the tag of the installed featurehouse: the same package for teammates and CI) and
    ignores .featurehouse/ (local state) in .gitignore. The files keep their comments and layout; one featurehouse
    cannot merge into is refused, naming what to fix, and nothing is written. Running it again changes nothing.
    Then run `dbt deps` and mark a model as a feature view with
    `config(meta={'featurehouse': {'entity': 'user', 'event_time': 'updated_at'}})`.
    """
    add_featurehouse(obj, obj.project_dir.resolve(), local)


def add_featurehouse(obj: CliContext, project: Path, local: bool, entities: dict[str, list[str]] | None = None,
                     quiet_next: bool = False, keep_package: bool = False) -> None:
    """What `init` does, for `init` and `import-feast` (which knows the project's entity types)."""
    from featurehouse import packaging

    config_path = project / "dbt_project.yml"
    if not config_path.is_file():
        raise ProjectError(f"no dbt_project.yml in {project} (pass --project-dir)")
    packages_path = project / "packages.yml"
    dependencies = project / "dependencies.yml"
    if not packages_path.is_file() and dependencies.is_file():  # dbt reads packages from either, not both
        if "packages" in (packaging.load(dependencies, packaging.read_text(dependencies)).data or {}):
            packages_path = dependencies
    plan: list[tuple[Path, str, str, str]] = []  # (file, text before, text after, what was done)
    merges = ((config_path, lambda doc: _merge_vars(doc, entities)),
              (packages_path, lambda doc: packaging.merge_package(doc, project, local, keep=keep_package)))
    for path, merge in merges:
        before = packaging.read_text(path) if path.is_file() else ""
        try:
            after, done = merge(packaging.load(path, before))
        except packaging.CannotMerge as e:
            raise ProjectError(f"{path}: {e}; nothing was written") from None
        plan.append((path, before, after, done))
    gitignore = project / ".gitignore"
    before = packaging.read_text(gitignore) if gitignore.is_file() else ""
    plan.append((gitignore, before, *_merge_gitignore(before)))

    changed = [path for path, before, after, _ in plan if after != before]
    for path, before, after, done in plan:  # everything merged: now write
        if after != before:
            packaging.write_text(path, after)
        obj.console.print(f"[green]✓[/green] {escape(done)}")
    if quiet_next:
        return
    if not changed:
        obj.console.print("nothing changed: the project already has featurehouse")
    elif packages_path in changed:
        obj.console.print("next: `dbt deps`, then declare your entities, add meta.featurehouse to a model and "
                          "`featurehouse build`")
    else:
        obj.console.print("next: declare your entities, add meta.featurehouse to a model, then `featurehouse build`")


def _merge_vars(doc, declared: dict[str, list[str]] | None = None) -> tuple[str, str]:
    """dbt_project.yml with vars.featurehouse declared: (new text, what was done). `declared` entity types
    replace the placeholder `user: [user_id]` (the Feast import knows the real ones)."""
    from featurehouse import packaging

    root, data, name = doc.root, doc.data, doc.path.name
    if root is None or not packaging.is_mapping(root) or not isinstance(data, dict):
        raise packaging.CannotMerge("it is not a mapping of dbt project settings (`name:`, `profile:`, ...)")
    found = packaging.value_node(root, "vars")
    entities = {"featurehouse": {"entities": copy.deepcopy(declared or {"user": ["user_id"]})}}
    if declared:
        flow_entities = ", ".join(f"{k}: [{', '.join(v)}]" for k, v in declared.items())
        vars_flow = f"{{entities: {{{flow_entities}}}}}"
        vars_block = ["featurehouse:", "  entities:"] + [f"    {k}: [{', '.join(v)}]" for k, v in declared.items()]
    else:
        vars_flow, vars_block = VARS_FLOW, VARS_BLOCK

    def declare(d):
        if d.get("vars") is None:
            d["vars"] = {}
        d["vars"].update(copy.deepcopy(entities))

    if found is None:
        lines = ["", "# " + VARS_COMMENT, "vars:"] + ["  " + line for line in vars_block]
        text = packaging.edit(doc, declare, lambda doc: packaging.insert_key(
            doc, root, "vars", f"{{featurehouse: {vars_flow}}}", lines, at_end_of_file=True), "vars.featurehouse")
        return text, f"{name}: added vars.featurehouse.entities " + _which(declared)
    key_node, node = found
    value = data.get("vars")
    if value is None:
        text = packaging.edit(doc, declare, lambda doc: packaging.fill_null(
            doc, key_node, node, f"{{featurehouse: {vars_flow}}}", vars_block), "vars.featurehouse")
    elif not isinstance(value, dict) or not packaging.is_mapping(node):
        raise packaging.CannotMerge(f"`vars:` is a {type(value).__name__}, not a mapping: make it `vars: {{name: value}}` "
                                    "or `name: value` lines under `vars:`")
    elif "featurehouse" in value:
        if declared:
            return _merge_entities(doc, declared)
        return doc.text, f"{name} already declares vars.featurehouse"
    else:
        text = packaging.edit(doc, declare, lambda doc: packaging.insert_key(doc, node, "featurehouse", vars_flow,
                                                                              vars_block), "vars.featurehouse")
    return text, f"{name}: added featurehouse.entities under vars " + _which(declared)


def _which(declared: dict[str, list[str]] | None) -> str:
    return f"({', '.join(declared)})" if declared else "(a placeholder, `user: [user_id]`: declare your entity types)"


def _merge_entities(doc, declared: dict[str, list[str]]) -> tuple[str, str]:
    """Entity types added to an existing vars.featurehouse.entities, one insertion at a time; a type
    declared with other keys is refused (views would join on the wrong columns)."""
    from featurehouse import packaging

    name = doc.path.name
    block = (doc.data.get("vars") or {}).get("featurehouse") or {}
    if not isinstance(block, dict):
        raise packaging.CannotMerge("`vars.featurehouse` is not a mapping")
    have = block.get("entities") or {}
    added = []
    for entity, keys in declared.items():
        current = have.get(entity)
        if current is not None:
            if ([current] if isinstance(current, str) else list(current)) != keys:
                raise packaging.CannotMerge(f"entity type `{entity}` is declared with keys {current}, the import "
                                            f"needs {keys}: rename one")
            continue
        vars_node = packaging.value_node(doc.root, "vars")
        fh_found = packaging.value_node(vars_node[1], "featurehouse") if vars_node else None
        if fh_found is None:
            raise packaging.CannotMerge("`vars.featurehouse` is not written as a mapping featurehouse can edit")
        fh_node = fh_found[1]
        found = packaging.value_node(fh_node, "entities")
        flow = f"[{', '.join(keys)}]"

        def declare(d, entity=entity, keys=keys):
            fh = d["vars"]["featurehouse"]
            if fh.get("entities") is None:
                fh["entities"] = {}
            fh["entities"][entity] = list(keys)

        if found is None:
            text = packaging.edit(doc, declare, lambda doc, fh_node=fh_node, entity=entity, flow=flow: packaging.insert_key(
                doc, fh_node, "entities", f"{{{entity}: {flow}}}", ["entities:", f"  {entity}: {flow}"]), "an entity type")
        elif not packaging.is_mapping(found[1]):
            text = packaging.edit(doc, declare, lambda doc, found=found, entity=entity, flow=flow: packaging.fill_null(
                doc, found[0], found[1], f"{{{entity}: {flow}}}", [f"{entity}: {flow}"]), "an entity type")
        else:
            text = packaging.edit(doc, declare, lambda doc, found=found, entity=entity, flow=flow: packaging.insert_key(
                doc, found[1], entity, flow, [f"{entity}: {flow}"]), "an entity type")
        doc = packaging.load(doc.path, text)
        have = ((doc.data.get("vars") or {}).get("featurehouse") or {}).get("entities") or {}
        added.append(entity)
    if not added:
        return doc.text, f"{name} declares entity types {', '.join(declared)}"
    return doc.text, f"{name}: added entity types {', '.join(added)} to vars.featurehouse.entities"


def _merge_gitignore(text: str) -> tuple[str, str]:
    """.gitignore ignoring .featurehouse/ (featurehouse's local state: DuckDB files, embedded Redis, training sets)."""
    lines = {line.strip() for line in text.splitlines()}
    if lines & {".featurehouse", ".featurehouse/", "/.featurehouse", "/.featurehouse/", ".featurehouse/*"}:
        return text, ".gitignore already ignores .featurehouse/"
    nl = "\r\n" if "\r\n" in text else "\n"
    add = f"# featurehouse's local state (DuckDB files, embedded Redis, training sets){nl}{IGNORED}{nl}"
    text = text + (nl if text and not text.endswith("\n") else "") + add
    return text, f".gitignore: added {IGNORED} (featurehouse's local state)"


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
@click.option("--all", "every_feature", is_flag=True,
              help=f"One row per feature even past {MAX_FEATURE_ROWS} features (else one row per view).")
@click.pass_obj
def list_features(obj: CliContext, entity: str | None, view: str | None, as_json: bool, every_feature: bool) -> None:
    """Every feature: `view.column@version`, its entity, type, owner, TTL, freshness SLO, sensitivity.

    Past a few hundred features a table of every one is too long to read (and slow to draw): the views
    are listed instead, one row each, and --view, --entity or --all list their features."""
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
    if len(rows) > MAX_FEATURE_ROWS and not every_feature and entity is None and view is None:
        _print_view_summary(obj, sorted(views, key=lambda v: (v.name, v.version)), len(rows))
        return
    table = Table(title=f"{len(rows)} features in {len(views)} views", title_justify="left")
    for col in ("feature", "entity", "type", "owner", "ttl", "freshness slo", "sensitivity", "online"):
        table.add_column(col)
    for v, f in rows:
        table.add_row(f.versioned_name, v.entity.name, f.data_type or "?", v.owner or "-", format_duration(v.ttl),
                      format_duration(v.freshness_slo), v.sensitivity, "yes" if v.online else "no")
    obj.console.print(table)


def _print_view_summary(obj: CliContext, views: list[FeatureView], features: int) -> None:
    table = Table(title=f"{features:,} features in {len(views)} views (one row per view: `--view VIEW`, "
                        "`--entity ENTITY` or `--all` list features)", title_justify="left")
    for col in ("view", "entity", "features", "owner", "ttl", "freshness slo", "sensitivity", "online"):
        table.add_column(col)
    for v in views:
        table.add_row(v.versioned_name, v.entity.name, str(len(v.features)), v.owner or "-", format_duration(v.ttl),
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
    names = len({v.name for v in views})
    title = f"feature registry: {names} view{'' if names == 1 else 's'}" + (
        f" ({len(views)} versions)" if len(views) != names else "")
    table = Table(title=title, title_justify="left")
    for col in ("view", "entity", "features", "ttl", "freshness slo", "owner"):
        table.add_column(col)
    for v in sorted(views, key=lambda v: (v.name, v.version)):
        table.add_row(v.versioned_name, v.entity.name, str(len(v.features)), format_duration(v.ttl),
                      format_duration(v.freshness_slo), v.owner or "-")
    obj.console.print(table)
