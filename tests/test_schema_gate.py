"""The schema gate (`featurehouse check`): a published view@version keeps its columns and types."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from featurehouse.cli.main import cli
from featurehouse.guard.schema_gate import compare, normalize_type
from featurehouse.offline.published import PublishedSchema
from tests.projects import fixture_project

WHEN = datetime(2026, 1, 1)


def published(view: str, version: int, schema: dict, node: str = "model.p.x") -> dict:
    return {(view, version): PublishedSchema(view, version, schema, f"{node}@abc", WHEN, "sync")}


def test_an_unchanged_published_version_passes():
    result = compare(published("stats", 1, {"cnt": "bigint"}), {("stats", 1): {"cnt": "BIGINT"}})
    assert result.ok and result.rows[0].status == "ok"


def test_a_changed_type_fails_naming_view_column_old_and_new_type_and_the_bump():
    result = compare(published("stats", 1, {"cnt": "bigint", "x": "double"}),
                     {("stats", 1): {"cnt": "VARCHAR", "x": "DOUBLE"}})
    (change,) = result.changes
    assert (change.kind, change.column, change.old, change.new, change.bump_to) == ("type_changed", "cnt", "bigint", "VARCHAR", 2)
    assert "stats@1: column 'cnt' changed type bigint -> VARCHAR" in change.message and "version 2" in change.message


def test_a_removed_column_fails():
    result = compare(published("stats", 1, {"cnt": "bigint", "x": "double"}), {("stats", 1): {"cnt": "bigint"}})
    assert [(c.kind, c.column) for c in result.changes] == [("removed_column", "x")]


def test_an_added_column_fails_because_online_values_are_stored_in_column_order():
    result = compare(published("stats", 1, {"cnt": "bigint"}), {("stats", 1): {"cnt": "bigint", "y": "varchar"}})
    assert [(c.kind, c.column) for c in result.changes] == [("added_column", "y")]


def test_reordered_columns_fail():
    result = compare(published("stats", 1, {"a": "bigint", "b": "bigint"}), {("stats", 1): {"b": "bigint", "a": "bigint"}})
    assert [c.kind for c in result.changes] == ["reordered"]


def test_a_new_version_passes_whatever_its_schema():
    result = compare(published("stats", 1, {"cnt": "bigint"}),
                     {("stats", 1): {"cnt": "bigint"}, ("stats", 2): {"cnt": "varchar", "z": "date"}})
    assert result.ok and {r.version: r.status for r in result.rows} == {1: "ok", 2: "new"}


def test_a_published_version_bumped_in_place_fails_but_a_retired_one_passes():
    in_place = compare(published("stats", 1, {"cnt": "bigint"}, node="model.p.stats"), {("stats", 2): {"cnt": "varchar"}},
                       current_ids={("stats", 2): "model.p.stats"})
    assert [c.kind for c in in_place.changes] == ["version_removed"]
    retired = compare(published("stats", 1, {"cnt": "bigint"}, node="model.p.stats_v1"), {("stats", 2): {"cnt": "varchar"}},
                      active={"stats": 2}, current_ids={("stats", 2): "model.p.stats_v2"})
    assert retired.ok and {r.version: r.status for r in retired.rows} == {1: "retired", 2: "new"}


def test_type_spellings_of_one_type_are_equal():
    assert normalize_type("character varying") == normalize_type("VARCHAR") == normalize_type("text")
    assert normalize_type("double precision") == normalize_type("DOUBLE") and normalize_type("int8") == "bigint"
    assert normalize_type("DECIMAL(18, 2)") != normalize_type("decimal(18,3)")


# -- the scenario, on a real dbt project -------------------------------------------------------

@pytest.fixture
def project(tmp_path):
    with fixture_project(tmp_path) as path:
        assert invoke(path, "build").exit_code == 0
        # a recorded training set publishes the versions it used
        result = invoke(path, "training-set", "--spine", "spine", "--entity", "thing", "--timestamp", "as_of",
                        "--features", "stats.cnt,stats.label_txt,profile.score")
        assert result.exit_code == 0 and "recorded as training set" in result.output, result.output
        yield path


def invoke(project: Path, *args: str):
    return CliRunner().invoke(cli, ["--project-dir", str(project), *args], catch_exceptions=False)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, text
    path.write_text(text.replace(old, new))


def test_check_passes_on_an_unchanged_project(project):
    result = invoke(project, "check")
    assert result.exit_code == 0, result.output
    assert "no published schema changed" in result.output


def test_check_fails_on_a_type_change_without_a_version_bump_before_anything_is_built(project):
    edit(project / "models" / "stats.sql", "cnt, label_txt", "cast(cnt as varchar) as cnt, label_txt")
    result = invoke(project, "check")
    assert result.exit_code == 1, result.output
    assert re.search(r"stats@1: column 'cnt' changed type bigint -> VARCHAR; declare stats version 2", result.output)


def test_check_passes_a_metadata_only_edit(project):
    edit(project / "models" / "stats.sql", "'owner': 'tests', 'freshness_slo': '1h'", "'owner': 'risk-team', 'freshness_slo': '2h'")
    result = invoke(project, "check")
    assert result.exit_code == 0, result.output


def test_check_passes_a_changed_schema_declared_as_a_new_version(project):
    """dbt model versions: stats v1 stays in stats.sql, v2 (cnt now text) lives in stats_v2.sql."""
    edit(project / "models" / "schema.yml", "      - {name: label_txt, data_type: varchar}\n",
         "      - {name: label_txt, data_type: varchar}\n    latest_version: 1\n    versions:\n"
         "      - {v: 1, defined_in: stats, config: {alias: stats}}\n"
         "      - v: 2\n        columns:\n          - include: all\n            exclude: [label_txt]\n"
         "          - {name: cnt, data_type: varchar}\n")
    (project / "models" / "stats_v2.sql").write_text(
        "{{ config(meta={'featurehouse': {'entity': 'thing', 'event_time': 'event_time', 'created_at': 'created_at'}}) }}\n"
        "select card_id, merchant, event_time, created_at, cast(cnt as varchar) as cnt from {{ source('raw', 'stats') }}\n")
    result = invoke(project, "check", "--json")
    assert result.exit_code == 0, result.output
    rows = {f"{r['view']}@{r['version']}": r["status"] for r in json.loads(result.output)["views"]}
    assert rows == {"stats@1": "ok", "stats@2": "new", "profile@1": "ok"}


@pytest.mark.spark_ready
def test_a_query_is_described_without_being_built_on_every_engine(warehouse):
    from sqlglot import exp

    query = exp.select(exp.cast(exp.Literal.number(1), "bigint").as_("n"), exp.cast(exp.Literal.string("x"), "varchar").as_("s"),
                       exp.cast(exp.Literal.number(1.5), "double").as_("d"), exp.cast(exp.null(), "timestamp").as_("t"))
    described = warehouse.describe_query(query.sql(warehouse.dialect))
    assert {c: normalize_type(t) for c, t in described.items()} == {
        "n": "bigint", "s": "varchar", "d": "double", "t": "timestamp"}
