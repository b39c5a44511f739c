"""`featurehouse lineage` and `featurehouse model register|list`: where features come from, where they go."""

from __future__ import annotations

import json

import click
from rich.table import Table
from rich.tree import Tree

from featurehouse.cli.context import CliContext

KIND_STYLE = {"feature": "bold cyan", "features of": "cyan", "model version": "bold magenta", "model": "bold magenta",
              "training set": "yellow", "dbt model": "green", "source": "blue", "seed": "blue"}


def _label(n: dict) -> str:
    style = KIND_STYLE.get(n["kind"], "")
    name = f"[{style}]{n['name']}[/{style}]" if style and n["name"] else n["name"]
    detail = f" [dim]{n['detail']}[/dim]" if n["detail"] else ""
    return f"[dim]{n['kind']}[/dim] {name}{detail}".strip()


def _draw(tree: Tree, n: dict) -> None:
    for child in n["children"]:
        _draw(tree.add(_label(child)), child)


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON (nested nodes).")
@click.pass_obj
def lineage(obj: CliContext, target: str, as_json: bool) -> None:
    """Lineage of a FEATURE (`view.column[@N]`) or a model (`MODEL@VERSION`, or `MODEL` for every version).

    \b
    A feature: the dbt model computing it and its upstream models and sources, then the recorded
    training sets that used it and the model versions bound to them.
    A model version: its training set, the features at their versions, their dbt models and sources.
    """

    root = obj.store().lineage(target)
    if as_json:
        click.echo(json.dumps(root, indent=2, default=str))
        return
    tree = Tree(_label(root))
    _draw(tree, root)
    obj.console.print(tree)


@click.group()
def model() -> None:
    """ML model versions and the training sets they were trained on."""


@model.command("register")
@click.argument("ref", metavar="MODEL@VERSION")
@click.option("--training-set", "training_set_id", default=None,
              help="The recorded training set (ts_...) it was trained on, or `latest` (the newest recorded for the "
                   "model); default: the exposure's meta.featurehouse.training_set.")
@click.option("--features", default=None, help="Comma-separated subset of the training set's features it uses.")
@click.pass_obj
def register(obj: CliContext, ref: str, training_set_id, features) -> None:
    """Bind MODEL@VERSION to a recorded training set and so to its features at their versions.

    Serving by `?model=MODEL@VERSION` then serves exactly those feature versions and marks vectors that
    break the version's guardrails; `featurehouse deploy-check MODEL@VERSION` checks them.
    """

    names = [f.strip() for f in features.split(",")] if features else None
    mv = obj.store().register_model(ref, training_set_id, names)
    obj.console.print(f"[green]✓[/green] {mv.ref} bound to training set {mv.training_set_id}: "
                      f"{', '.join(mv.features)}")


@model.command("list")
@click.argument("name", required=False)
@click.pass_obj
def list_models(obj: CliContext, name) -> None:
    """Registered model versions (all, or of NAME)."""
    store = obj.store()
    table = Table(title="model versions", title_justify="left")
    for col in ("model@version", "training set", "features", "registered", "source"):
        table.add_column(col)
    for mv in store.lineage_log().model_versions_of(name):
        table.add_row(mv.ref, mv.training_set_id, str(len(mv.features)), f"{mv.registered_at:%Y-%m-%d %H:%M}", mv.source)
    obj.console.print(table)
