"""`featurehouse import-feast`: a Feast repository becomes a dbt project whose training sets equal Feast's.

The equality tests run Feast itself from a virtual environment of its own (FEATUREHOUSE_FEAST_PYTHON,
made by `bash bench/feast_env.sh`), with its DuckDB offline store, on the same Parquet files, and
compare every row of `get_historical_features(full_feature_names=True)` with featurehouse's training set.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from featurehouse import FeatureStore
from featurehouse.cli.main import cli
from tests.feast_projects import MARKETPLACE_FEATURES, marketplace_repo, marketplace_spine

HERE = Path(__file__).resolve().parent
FEAST_PYTHON = os.environ.get("FEATUREHOUSE_FEAST_PYTHON")
needs_feast = pytest.mark.skipif(
    not FEAST_PYTHON, reason="Feast equality: set FEATUREHOUSE_FEAST_PYTHON to the python of a Feast 0.67 venv "
                             "(`bash bench/feast_env.sh` makes one; .ci/run does)")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def import_feast(project: Path, repo: Path, *args: str):
    return run("--project-dir", str(project), "import-feast", str(repo), "--local", *args)


@pytest.fixture
def marketplace(tmp_path) -> Path:
    return marketplace_repo(tmp_path / "feast", seed=7)


def test_the_report_lists_every_definition_and_what_became_of_it(tmp_path, marketplace):
    project = tmp_path / "analytics"
    result = import_feast(project, marketplace)
    assert result.exit_code == 0, result.output
    report = (project / "models" / "feast" / "FEAST_IMPORT.md").read_text()
    rows = {line.split("|")[2].strip(" `"): line for line in report.splitlines() if line.startswith("| ")}
    assert "| translated |" in rows["user_stats"] and "| translated |" in rows["user_merchant_stats"]
    assert "not translated" in rows["spend_ratio"] and "Python transform" in rows["spend_ratio"]
    assert "partly translated" in rows["user_merchant_fresh"] and "push" in rows["user_merchant_fresh"]
    assert "partly translated" in rows["clicks"] and "KafkaSource" in rows["clicks"]
    # fraud_v1 keeps its four SQL features and names the on-demand one it leaves out
    assert "partly translated" in rows["fraud_v1"] and "spend_ratio (on-demand)" in rows["fraud_v1"]
    # the view built in a list comprehension: only running the code would tell, so it is listed with its line
    unreadable = [line for line in report.splitlines() if "region_" in line]
    assert unreadable and "feature_definitions.py:9" in unreadable[0] and "not translated" in unreadable[0]
    assert "not fully translated" in result.output
    assert "not translated" in rows["basket"] and "no history" in rows["basket"]  # the RequestSource
    # an aliased view is listed under its own name, and a service without an owner says to set one
    assert "buyer_stats" in rows["buyer_v1"] and "set the exposure's `owner`" in rows["buyer_v1"]
    exposures = yaml.safe_load((project / "models" / "feast" / "_feast_exposures.yml").read_text())["exposures"]
    buyer = next(e for e in exposures if e["name"] == "buyer_v1")
    assert buyer["meta"]["feast"]["tags"] == {"stage": "production"}
    assert buyer["meta"]["featurehouse"]["features"] == ["user_stats.spend_7d", "user_stats.n_orders",
                                                         "user_stats.segment"]


def test_paths_in_the_project_are_relative_to_it_so_a_teammates_checkout_works(tmp_path, marketplace):
    project = tmp_path / "analytics"
    assert import_feast(project, marketplace).exit_code == 0
    sources = yaml.safe_load((project / "models" / "feast" / "_feast_sources.yml").read_text())["sources"][0]
    locations = {t["name"]: t["meta"]["external_location"] for t in sources["tables"]}
    assert locations["user_stats_source"] == "../feast/marketplace_repo/data/user_stats.parquet"
    assert all(not location.startswith("/") for location in locations.values())
    assert str(tmp_path) not in "".join(p.read_text() for p in (project / "models").rglob("*") if p.is_file())
    teammate = tmp_path / "teammate"  # the same layout checked out elsewhere: it builds and reads the data
    shutil.copytree(tmp_path / "feast", teammate / "feast")
    shutil.copytree(project, teammate / "analytics")
    store = FeatureStore(teammate / "analytics")
    store.build()
    assert store.warehouse.fetch_arrow("select count(*) as n from main.user_stats").column("n")[0].as_py() > 100
    store.close()
    # featurehouse reads relative paths from the project, as dbt does, from whatever directory it runs in
    checked = run("--project-dir", str(teammate / "analytics"), "check")
    assert checked.exit_code == 0, checked.output


def test_imported_views_keep_feasts_keys_ttls_flags_owners_and_field_mapping(tmp_path, marketplace):
    project = tmp_path / "analytics"
    assert import_feast(project, marketplace).exit_code == 0
    config = yaml.safe_load((project / "dbt_project.yml").read_text())
    assert config["vars"]["featurehouse"]["entities"] == {
        "user": ["user_id"], "merchant": ["merchant_id"], "user_merchant": ["user_id", "merchant_id"],
    }
    store = FeatureStore(project)
    store.build()
    views = store.registry.views
    user_stats = store.registry.view("user_stats")
    assert (user_stats.ttl, user_stats.created_at, user_stats.owner) == (timedelta(hours=3), "created_ts",
                                                                         "risk@example.com")
    assert set(user_stats.tags) == {"team:risk", "domain:payments"}
    assert [f.column for f in user_stats.features] == ["spend_7d", "n_orders", "segment"]  # the key is not a feature
    merchant = store.registry.view("merchant_stats")
    assert merchant.ttl is None and merchant.online is False and merchant.created_at is None
    pair = store.registry.view("user_merchant_stats")
    assert pair.entity.keys == ("user_id", "merchant_id") and pair.ttl == timedelta(minutes=90)
    assert [f.column for f in pair.features] == ["amount_1h", "txn_1h"]  # `amt` in the file, renamed by field_mapping
    assert "spend_ratio" not in {v[0] if isinstance(v, tuple) else v for v in views}
    model = store.registry.models["fraud_v1"]
    assert list(model.features) == ["user_stats.spend_7d", "user_stats.segment", "merchant_stats.risk_score",
                                    "merchant_stats.is_new", "user_merchant_stats.amount_1h",
                                    "user_merchant_stats.txn_1h"]


def test_a_forced_import_removes_the_models_of_views_that_left_feast_and_keeps_the_package_entry(tmp_path, marketplace):
    project = tmp_path / "analytics"
    assert import_feast(project, marketplace).exit_code == 0  # --local
    packages = (project / "packages.yml").read_text()
    definitions = marketplace / "feature_definitions.py"
    text = definitions.read_text()
    start = text.index("user_merchant_fresh = FeatureView(")
    definitions.write_text(text[:start] + text[text.index("clicks_stream = ", start):])
    (project / "models" / "feast" / "my_own.sql").write_text("select 1 as x\n")  # not the import's: kept
    result = run("--project-dir", str(project), "import-feast", str(marketplace), "--force")  # no --local
    assert result.exit_code == 0, result.output
    assert not (project / "models" / "feast" / "user_merchant_fresh.sql").exists()
    assert (project / "models" / "feast" / "my_own.sql").exists() and "removed" in result.output
    assert (project / "packages.yml").read_text() == packages  # the local entry was not turned into git
    store = FeatureStore(project)
    store.build()
    assert "user_merchant_fresh" not in {v.name for v in store.registry.views.values()}


def test_a_second_import_is_refused_unless_forced_and_a_dry_run_writes_nothing(tmp_path, marketplace):
    project = tmp_path / "analytics"
    dry = import_feast(project, marketplace, "--dry-run")
    assert dry.exit_code == 0 and "would write" in dry.output and not project.exists()
    assert import_feast(project, marketplace).exit_code == 0
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    again = import_feast(project, marketplace)
    assert again.exit_code == 2 and "--force" in again.output and "user_stats.sql" in again.output
    forced = import_feast(project, marketplace, "--force")
    assert forced.exit_code == 0, forced.output
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before  # re-running changes nothing


def test_import_into_an_existing_project_adds_entities_and_keeps_the_users_file(tmp_path, marketplace):
    project = tmp_path / "shop"
    project.mkdir()
    original = ("name: shop  # our shop\nprofile: shop\nvars:\n  featurehouse:\n    entities:\n"
                "      customer: [customer_id]  # ours\n")
    (project / "dbt_project.yml").write_text(original)
    assert import_feast(project, marketplace).exit_code == 0
    text = (project / "dbt_project.yml").read_text()
    assert text.startswith(original)  # comments and the user's entity kept; the Feast ones appended
    assert yaml.safe_load(text)["vars"]["featurehouse"]["entities"] == {
        "customer": ["customer_id"], "user": ["user_id"], "merchant": ["merchant_id"],
        "user_merchant": ["user_id", "merchant_id"]}


def test_an_entity_declared_with_other_keys_is_named_not_overwritten(tmp_path, marketplace):
    project = tmp_path / "shop"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: shop\nprofile: shop\nvars: {featurehouse: {entities: "
                                             "{user: [account_id]}}}\n")
    assert import_feast(project, marketplace).exit_code == 0
    report = (project / "models" / "feast" / "FEAST_IMPORT.md").read_text()
    skipped = next(line for line in report.splitlines() if "`user_stats`" in line)
    assert "not translated" in skipped and "entity type `user` is already declared with keys ['account_id']" in skipped
    assert "--rename-entity user=feast_user" in skipped
    renamed = import_feast(project, marketplace, "--force", "--rename-entity", "user=buyer")
    assert renamed.exit_code == 0, renamed.output
    entities = yaml.safe_load((project / "dbt_project.yml").read_text())["vars"]["featurehouse"]["entities"]
    assert entities == {"user": ["account_id"], "buyer": ["user_id"], "merchant": ["merchant_id"],
                        "buyer_merchant": ["user_id", "merchant_id"]}
    models = yaml.safe_load((project / "models" / "feast" / "_feast_models.yml").read_text())["models"]
    assert {m["name"]: m["config"]["meta"]["featurehouse"]["entity"] for m in models
            if "featurehouse" in m["config"]["meta"]}["user_stats"] == "buyer"
    assert "user: [account_id]" in (project / "dbt_project.yml").read_text()


def test_a_directory_without_feature_store_yaml_is_one_line_exit_2(tmp_path, marketplace):
    result = run("--project-dir", str(tmp_path / "p"), "import-feast", str(marketplace.parent))
    assert result.exit_code == 2
    assert "not a Feast repository: no feature_store.yaml (found one in" in result.output
    assert "Traceback" not in result.output


# -- equal to Feast, row by row ------------------------------------------------------------------


def feast_training_set(repo: Path, spine: pa.Table, features: list[str], work: Path) -> pd.DataFrame:
    """Feast's get_historical_features, run by Feast's own Python on a copy of the repository."""
    spine_path, out = work / "spine.parquet", work / "feast_out.parquet"
    pq.write_table(spine, spine_path)
    subprocess.run([str(FEAST_PYTHON), str(HERE / "feast_reference.py"), str(repo), str(spine_path),
                    ",".join(features), str(out)], check=True, capture_output=True, timeout=600)
    return pd.read_parquet(out)


def featurehouse_training_set(project: Path, repo: Path, spine: pa.Table, features: list[str]) -> pd.DataFrame:
    result = import_feast(project, repo)
    assert result.exit_code == 0, result.output
    store = FeatureStore(project)
    store.build()
    return store.training_set(spine, [f.replace(":", ".") for f in features], timestamp="event_timestamp")


def assert_same_rows(feast: pd.DataFrame, ours: pd.DataFrame, features: list[str]) -> None:
    feast = feast.set_index("row_id").sort_index()
    ours = ours.set_index("row_id").sort_index()
    assert list(feast.index) == list(ours.index), "Feast and featurehouse return different spine rows"
    columns = [f.replace(":", "__") for f in features]
    assert set(columns) <= set(ours.columns), f"featurehouse lacks {set(columns) - set(ours.columns)}"
    compared = 0
    for col in columns:
        for row_id, theirs, mine in zip(feast.index, feast[col], ours[col]):
            assert same(theirs, mine), (f"row {row_id}, {col}: Feast {theirs!r}, featurehouse {mine!r} "
                                        f"(spine {ours.loc[row_id].iloc[:3].to_dict()})")
            compared += 1
    assert compared == len(columns) * len(feast)
    filled = sum(int(not is_null(v)) for col in columns for v in ours[col])
    assert filled > compared // 4, "too few matches for the comparison to mean anything"


def is_null(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def same(a, b) -> bool:
    if is_null(a) or is_null(b):
        return is_null(a) and is_null(b)
    if isinstance(a, dict) or isinstance(b, dict):
        return dict(a) == dict(b)
    return a == b


@needs_feast
@pytest.mark.parametrize("seed", [7, 8])
def test_a_multi_entity_composite_key_repository_gives_feasts_training_set(tmp_path, seed):
    repo = marketplace_repo(tmp_path / "feast", seed=seed)
    spine = marketplace_spine(seed)
    feast = feast_training_set(repo, spine, MARKETPLACE_FEATURES, tmp_path)
    ours = featurehouse_training_set(tmp_path / "analytics", repo, spine, MARKETPLACE_FEATURES)
    assert_same_rows(feast, ours, MARKETPLACE_FEATURES)


DRIVER_FEATURES = [f"driver_hourly_stats:{f}" for f in
                   ("conv_rate", "acc_rate", "avg_daily_trips", "driver_metadata", "driver_config", "driver_profile")]


@needs_feast
def test_the_repository_feast_init_creates_gives_feasts_training_set(tmp_path):
    feast_bin = Path(str(FEAST_PYTHON)).parent / "feast"
    subprocess.run([str(feast_bin), "init", "driver_repo"], cwd=tmp_path, check=True, capture_output=True, timeout=300)
    repo = tmp_path / "driver_repo" / "feature_repo"
    config = repo / "feature_store.yaml"
    config.write_text(config.read_text() + "offline_store:\n    type: duckdb\n")  # the offline store
    stats = pq.read_table(repo / "data" / "driver_stats.parquet").to_pandas()
    rng = random.Random(3)
    events = list(stats["event_timestamp"])
    rows = []
    for i in range(300):
        t = rng.choice(events) + rng.choice([timedelta(0), timedelta(days=1), timedelta(minutes=rng.randint(1, 2000)),
                                             timedelta(days=1, microseconds=1)])
        rows.append({"row_id": i, "driver_id": rng.choice([1001, 1002, 1003, 1004, 1005, 999]),
                     "event_timestamp": t.to_pydatetime()})
    spine = pa.Table.from_pylist(rows, schema=pa.schema([("row_id", pa.int64()), ("driver_id", pa.int64()),
                                                         ("event_timestamp", pa.timestamp("us", tz="UTC"))]))
    feast = feast_training_set(repo, spine, DRIVER_FEATURES, tmp_path)
    ours = featurehouse_training_set(tmp_path / "analytics", repo, spine, DRIVER_FEATURES)
    assert_same_rows(feast, ours, DRIVER_FEATURES)


OLD_STYLE = '''
from google.protobuf.duration_pb2 import Duration
from feast import Entity, Feature, FeatureView, FileSource, ValueType

from sources import *  # noqa: F403

driver = Entity(name="driver_id", value_type=ValueType.INT64, description="driver id")
driver_hourly_stats = FeatureView(
    name="driver_hourly_stats", entities=["driver_id"], ttl=Duration(seconds=3600 * 2),
    features=[Feature(name="conv_rate", dtype=ValueType.FLOAT), Feature("trips", ValueType.INT64)],
    online=True, batch_source=driver_source, tags={},
)
'''


def test_feast_before_0_20_spellings_and_star_imports_across_modules(tmp_path):
    """`features=[Feature(...)]`, `batch_source=`, `event_timestamp_column=`, entities named by string, a
    join key defaulting to the entity's name, a protobuf Duration TTL, and `from module import *`."""
    repo = tmp_path / "old_repo"
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text("project: old\nregistry: data/registry.db\nprovider: local\n")
    (repo / "sources.py").write_text('from feast import FileSource\n\ndriver_source = FileSource(\n'
                                     '    path="data/drivers.parquet", event_timestamp_column="datetime")\n')
    (repo / "definitions.py").write_text(OLD_STYLE)
    pq.write_table(pa.table({"driver_id": pa.array([1, 2], pa.int64()),
                             "datetime": pa.array([pd.Timestamp("2026-01-01 10:00"), pd.Timestamp("2026-01-01 11:00")]),
                             "conv_rate": pa.array([0.5, 0.25], pa.float32()), "trips": pa.array([3, 4], pa.int64())}),
                   repo / "data" / "drivers.parquet")
    project = tmp_path / "analytics"
    result = import_feast(project, repo, "--strict")
    assert result.exit_code == 1 and "not fully translated" in result.output  # the sqlite online store note
    store = FeatureStore(project)
    store.build()
    view = store.registry.view("driver_hourly_stats")
    assert (view.entity.keys, view.event_time, view.ttl) == (("driver_id",), "datetime", timedelta(hours=2))
    assert [(f.column, f.data_type) for f in view.features] == [("conv_rate", "float"), ("trips", "bigint")]
    spine = pd.DataFrame({"driver_id": [1, 1, 2], "at": pd.to_datetime(["2026-01-01 10:30:00", "2026-01-01 12:00:01",
                                                                        "2026-01-01 11:00:00"])})
    ts = store.training_set(spine, ["driver_hourly_stats.trips"], timestamp="at")
    assert ts["driver_hourly_stats__trips"].tolist()[0::2] == [3, 4] and pd.isna(ts["driver_hourly_stats__trips"][1])
