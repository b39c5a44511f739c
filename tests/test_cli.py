"""The CLI as a user meets it: tables, files, and one clear line (exit 2) for every user error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from featurehouse.cli.main import cli
from tests import fixture_data
from tests.projects import fixture_project

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The fixture dbt project on DuckDB, raw data loaded, built with `featurehouse build`."""
    with fixture_project(tmp_path_factory.mktemp("cli")) as path:
        result = invoke(path, "build")
        assert result.exit_code == 0, result.output
        yield path


def invoke(project: Path, *args: str):
    return CliRunner().invoke(cli, ["--project-dir", str(project), *args], catch_exceptions=False)


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_build_prints_the_registry(project):
    result = invoke(project, "build", "--select", "stats")
    assert result.exit_code == 0, result.output
    assert "feature registry: 2 views" in result.output and "stats@1" in result.output


def test_features_list_is_a_table_of_every_feature(project):
    result = invoke(project, "features", "list")
    assert result.exit_code == 0
    for text in ("stats.cnt@1", "stats.label_txt@1", "profile.score@1", "5s", "thing"):
        assert text in result.output


def test_past_a_readable_length_features_list_lists_views_and_says_how_to_see_features(project, monkeypatch):
    from featurehouse.cli import commands_features

    monkeypatch.setattr(commands_features, "MAX_FEATURE_ROWS", 2)  # the project has 3 features in 2 views
    result = invoke(project, "features", "list")
    assert result.exit_code == 0, result.output
    assert "3 features in 2 views (one row per view" in result.output and "stats@1" in result.output
    assert "stats.cnt@1" not in result.output
    for narrowed in (["--view", "stats"], ["--all"]):
        assert "stats.cnt@1" in invoke(project, "features", "list", *narrowed).output


def test_features_list_json(project):
    rows = json.loads(invoke(project, "features", "list", "--json").output)
    assert {r["name"] for r in rows} == {"stats.cnt", "stats.label_txt", "profile.score"}


def test_features_show_gives_metadata_and_upstream(project):
    result = invoke(project, "features", "show", "stats")
    assert result.exit_code == 0
    for text in ("owner", "tests", "serving_delay", "1s", "source.fh_fixture.raw.stats", "model.fh_fixture.stats"):
        assert text in result.output


def test_training_set_writes_parquet_with_spine_columns_first(project, tmp_path):
    spine = pa.table({"card_id": [0, 1], "merchant": ["ü", "x y"],
                      "as_of": pa.array([fixture_data.INSTANTS[6]] * 2, pa.timestamp("us")), "y": [1, 0]})
    pq.write_table(spine, tmp_path / "spine.parquet")
    out = tmp_path / "train.parquet"
    result = invoke(project, "training-set", "--spine", str(tmp_path / "spine.parquet"), "--entity", "thing",
                    "--timestamp", "as_of", "--features", "stats.cnt,profile.score", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "2 rows x 2 features" in result.output
    assert pq.read_table(out).column_names == ["card_id", "merchant", "as_of", "y", "stats__cnt", "profile__score"]


def test_training_set_as_model_writes_a_dbt_model_that_builds(project):
    result = invoke(project, "training-set", "--spine", "spine", "--timestamp", "as_of",
                    "--features", "stats.cnt,profile.score", "--as-model", "cli_training")
    assert result.exit_code == 0, result.output
    written = project / "models" / "training" / "cli_training.sql"
    assert "featurehouse.point_in_time_join" in written.read_text()
    assert invoke(project, "build", "--select", "cli_training").exit_code == 0


def test_training_set_as_model_does_not_overwrite_a_model_without_force(project):
    """A hand-written model of the same name (anywhere under models/) is kept unless --force says otherwise."""
    mine = project / "models" / "cli_training_kept.sql"
    mine.write_text("-- hand-written\nselect 1 as x\n")
    args = ("training-set", "--spine", "spine", "--timestamp", "as_of", "--features", "stats.cnt", "--as-model", "cli_training_kept")
    assert_user_error(invoke(project, *args), "models/cli_training_kept.sql exists already", "--force")
    assert mine.read_text().startswith("-- hand-written")
    mine.unlink()
    assert invoke(project, *args).exit_code == 0
    written = project / "models" / "training" / "cli_training_kept.sql"
    written.write_text("-- edited\n")
    assert_user_error(invoke(project, *args), "exists already")
    assert invoke(project, *args, "--force").exit_code == 0 and "point_in_time_join" in written.read_text()


def test_unknown_feature_is_one_line(project, tmp_path):
    result = invoke(project, "training-set", "--spine", "spine", "--timestamp", "as_of", "--features", "stats.cnt_7d")
    assert_user_error(result, "stats.cnt_7d", "no feature column 'cnt_7d'")


def test_missing_spine_column_is_one_line(project):
    result = invoke(project, "training-set", "--spine", "select 1 as card_id, now()::timestamp as as_of",
                    "--timestamp", "as_of", "--features", "stats.cnt")
    assert_user_error(result, "spine has no column 'merchant'", "key of entity 'thing'")


def test_no_project_is_one_line(tmp_path):
    assert_user_error(invoke(tmp_path, "features", "list"), "no dbt_project.yml")


def test_bad_metadata_in_a_model_is_one_line_naming_model_and_field(project, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(project, broken, ignore=shutil.ignore_patterns("target", "*.duckdb", "logs", "dbt_packages"))
    sql = broken / "models" / "stats.sql"
    sql.write_text(sql.read_text().replace("'ttl': '5s'", "'ttl': 'five seconds'"))
    assert_user_error(invoke(broken, "features", "list"), "model 'stats': meta.featurehouse.ttl: bad duration 'five seconds'")


def test_init_adds_vars_and_package(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: shop\nversion: '1.0'\nprofile: shop\n")
    result = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "init"])
    assert result.exit_code == 0, result.output
    import yaml

    assert yaml.safe_load((tmp_path / "dbt_project.yml").read_text())["vars"]["featurehouse"]["entities"] == {"user": ["user_id"]}
    assert "revision: v" in (tmp_path / "packages.yml").read_text()
    assert "nothing changed" in CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "init"]).output


def test_init_keeps_an_inline_vars_map_and_the_users_comments(tmp_path):
    """A flow-style `vars: {...}` stays valid YAML with the user's own vars and comments kept."""
    import yaml

    text = "name: shop\nprofile: shop\n# our settings\nvars: {other: 1}\nmodels:\n  shop:\n    +materialized: table\n"
    (tmp_path / "dbt_project.yml").write_text(text)
    result = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "init"])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "dbt_project.yml").read_text()
    assert "# our settings" in written
    assert yaml.safe_load(written)["vars"] == {"other": 1, "featurehouse": {"entities": {"user": ["user_id"]}}}
    again = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "init"])
    assert again.exit_code == 0 and "already declares" in again.output


def test_an_unknown_target_is_the_error_not_a_model_it_happened_to_need(project):
    result = CliRunner().invoke(cli, ["--project-dir", str(project), "--target", "nosuch", "features", "list"])
    assert_user_error(result, "target 'nosuch' not found")
    assert "model '" not in result.output


def test_serve_config_errors_are_one_line_naming_the_setting(project, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("port: [oops\n")
    assert_user_error(invoke(project, "serve", "--config", str(broken)), "not valid YAML")
    wrong = tmp_path / "wrong.yml"
    wrong.write_text("port: abc\n")
    assert_user_error(invoke(project, "serve", "--config", str(wrong)), "port 'abc': give a whole number")
    slow = tmp_path / "slow.yml"
    slow.write_text("timeout_s: -1\n")
    assert_user_error(invoke(project, "serve", "--config", str(slow)), "timeout_s -1")


def test_a_negative_parity_sample_is_a_usage_error(project):
    result = CliRunner().invoke(cli, ["--project-dir", str(project), "parity", "--sample", "-1"])
    assert result.exit_code == 2 and "--sample" in result.output


def test_lineage_of_nothing_is_a_usage_error(project):
    assert_user_error(invoke(project, "lineage", ""), "give a feature")


@pytest.mark.parametrize("content", ['"just a string"', "42", '{"rows": 3}', "[" * 50_000 + "]" * 50_000])
def test_pushing_a_json_file_that_is_not_rows_is_one_line(project, tmp_path, content):
    rows = tmp_path / "rows.json"
    rows.write_text(content)
    result = invoke(project, "push", "stats", str(rows))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output


def test_past_a_readable_length_sync_lists_only_the_views_that_did_something(project, monkeypatch):
    from featurehouse.cli import commands_online

    monkeypatch.setattr(commands_online, "QUIET_AFTER", 1)  # the project has 2 online views
    first = invoke(project, "sync", "--full-refresh")
    assert first.exit_code == 0, first.output
    assert "sync: 2 views" in first.output and "stats@1" in first.output and "profile@1" in first.output
    again = invoke(project, "sync")
    assert again.exit_code == 0, again.output
    # stats reads from its created_at watermark: nothing new, not listed; profile (no created_at) may be read
    # in full again (a full read is listed)
    assert "stats@1" not in again.output, again.output
    assert ("sync: 2 views (1 with nothing new not listed)" in again.output and "profile@1" in again.output) or \
        "sync: 2 views, nothing new in any; every run recorded as a success" in again.output, again.output
