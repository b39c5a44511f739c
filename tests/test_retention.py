"""`featurehouse retention` bounds featurehouse's own offline copies by a view's retention: landing rows,
served values and training-set profiles older than it go, newer ones stay; audit events older than
vars.featurehouse.audit_retention go. The user's model relations are never touched."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import click
import pyarrow as pa
import pytest
from click.testing import CliRunner
from rich.console import Console

from featurehouse.access.audit import AuditEvent, record_events
from featurehouse.catalog import AUDIT, SERVED_VALUES, TRAINING_SETS
from featurehouse.cli.commands_online import retention as retention_command
from featurehouse.cli.context import FeaturehouseGroup
from featurehouse.clock import utc_now
from featurehouse.errors import InvalidFeatureMetadata
from featurehouse.guard.served import land_served
from featurehouse.offline.lineage import LineageLog
from featurehouse.online.store import OnlineRow
from featurehouse.registry.manifest import parse_entities, registry_from_manifest
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from featurehouse.serving.served_log import ServedLog
from featurehouse.serving.vectors import FeatureValue, FeatureVector
from featurehouse.stream.log import landing_relation
from tests.stores import store_over

# a schema of its own says so when another run's featurehouse tables are in the default one (PostgreSQL)
pytestmark = pytest.mark.filterwarnings("ignore:vars.featurehouse.schema is:UserWarning")
SCHEMA = f"fh_retention_{os.getpid()}"  # featurehouse's tables of these tests: never another run's
USER = Entity("user", ("user_id",))
NOW = utc_now().replace(microsecond=0)
OLD, MID, RECENT = NOW - timedelta(days=500), NOW - timedelta(days=100), NOW - timedelta(days=10)


def view(name: str, column: str, version: int = 1, retention=None, ttl=None) -> FeatureView:
    return FeatureView(name, version, USER, Relation(None, None, name), "event_time",
                       (Feature(name, column, "bigint", version),), retention=retention, ttl=ttl)


class Project:
    """What the store reads of a dbt project here: vars.featurehouse (its schema, retention settings)."""

    dir = None

    def __init__(self, **settings):
        self.featurehouse_vars = {"schema": SCHEMA, **settings}

    def built_at(self, unique_id):
        return None


@pytest.fixture
def store(warehouse, redis_url):
    for name, column in (("clicks", "n"), ("plain", "x")):  # the user's models: rows older than any retention
        warehouse.load_table(name, pa.Table.from_pylist(
            [{"user_id": u, "event_time": OLD, column: u} for u in (1, 2, 3)]))
    registry = Registry(entities={"user": USER})
    registry.add(view("clicks", "n", retention=timedelta(days=400)))
    registry.add(view("plain", "x"))
    warehouse.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
    with store_over(registry, warehouse, redis_url, sync=False) as s:
        s.project = Project()
        s.log_sample_rate = 0  # served values only where a test writes them
        try:
            yield s
        finally:
            warehouse.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')


def push_rows(store, times=(OLD, RECENT)) -> None:
    """Rows pushed to both views (user i at times[i - 1]), landed by the stream consumer."""
    for name, column in (("clicks", "n"), ("plain", "x")):
        result = store.push(name, [{"user_id": i, "event_time": t.isoformat(), column: i * 10}
                                   for i, t in enumerate(times, 1)])
        assert result.accepted == len(times), result.rejected
    assert store.stream_consumer().run_once() == 2 * len(times)


def landed(store, name: str) -> list:
    table = landing_relation(store.registry.view(name), SCHEMA).identifier
    rows = store.warehouse.fetch_arrow(f'select event_time from "{SCHEMA}"."{table}"').to_pylist()
    return sorted(r["event_time"] for r in rows)


def model_rows(store, name: str) -> int:
    return store.warehouse.fetch_arrow(f'select count(*) from "{name}"').column(0)[0].as_py()


def served_rows(store) -> list[tuple]:
    rows = store.catalog.rows(SERVED_VALUES)
    return sorted((r["feature"], r["version"], r["entity_id"]) for r in rows)


def test_landing_rows_older_than_the_views_retention_go_and_newer_ones_stay(store):
    push_rows(store)
    assert landed(store, "clicks") == [OLD, RECENT]
    report = store.retention(now=NOW)
    assert report == {}  # online: no view has a TTL, so nothing, as before
    assert list(report.offline.views) == ["clicks@1"]  # plain has no retention: kept whole
    counts = report.offline.views["clicks@1"]
    assert (counts.retention, counts.cutoff) == (timedelta(days=400), NOW - timedelta(days=400))
    assert (counts.landing_rows, counts.served_values, counts.profiles_trimmed) == (1, 0, 0)
    assert landed(store, "clicks") == [RECENT]
    assert landed(store, "plain") == [OLD, RECENT]
    assert (model_rows(store, "clicks"), model_rows(store, "plain")) == (3, 3)  # the user's models: untouched
    assert store.retention(now=NOW).offline.views["clicks@1"].landing_rows == 0


def test_a_dry_run_counts_what_would_go_and_deletes_nothing(store):
    push_rows(store)
    store.registry.add(view("plain", "x", ttl=timedelta(days=30)))
    store.online.write(store.registry.view("plain"), [OnlineRow((7,), MID, None, (1,))])
    dry = store.retention(now=NOW, dry_run=True)
    assert dry == {"plain@1": 2}  # users 1 (pushed at OLD) and 7 are past the 30-day TTL
    assert dry.offline.dry_run and dry.offline.views["clicks@1"].landing_rows == 1
    assert landed(store, "clicks") == [OLD, RECENT]
    plain = store.registry.view("plain")
    assert store.online.read("user", [(7,)], [(plain, 1)])[0]["plain@1"] is not None
    done = store.retention(now=NOW)
    assert done == {"plain@1": 2} and done.offline.views["clicks@1"].landing_rows == 1
    assert store.online.read("user", [(7,)], [(plain, 1)])[0]["plain@1"] is None
    assert landed(store, "clicks") == [RECENT]


def test_served_values_of_the_view_older_than_its_retention_go(store):
    push_rows(store)
    store.registry.add(view("clicks", "n", version=2))  # another version: no retention of its own
    vectors = store.online_features("user", ["1", "2"], ["clicks.n", "plain.x"])  # served as serving serves
    vectors[0].served_at, vectors[1].served_at = OLD, RECENT
    v2 = FeatureVector("user", "1", {"clicks.n@2": FeatureValue(10, OLD, 1.0, False, 2, "ok")}, False, OLD)
    log = ServedLog(1.0)
    log.append(store.online.client, [*vectors, v2], None)
    assert land_served(store.online.client, store.catalog) == 3
    assert served_rows(store) == [("clicks.n", 1, "1"), ("clicks.n", 1, "2"), ("clicks.n", 2, "1"),
                                  ("plain.x", 1, "1"), ("plain.x", 1, "2")]
    report = store.retention(now=NOW)
    assert report.offline.views["clicks@1"].served_values == 1
    assert served_rows(store) == [("clicks.n", 1, "2"), ("clicks.n", 2, "1"), ("plain.x", 1, "1"), ("plain.x", 1, "2")]


def test_training_sets_recorded_before_the_cutoff_lose_the_views_profiles_and_keep_their_record(store):
    push_rows(store)
    spine = pa.table({"user_id": [1, 2], "ts": pa.array([NOW, NOW], pa.timestamp("us"))})
    built = [store.build_training_set(spine, ["clicks.n", "plain.x"], timestamp="ts") for _ in range(2)]
    assert all(ts.record_error is None for ts in built)
    old, new = (ts.record for ts in built)
    assert old is not None and new is not None and set(old.profile) == {"clicks.n@1", "plain.x@1"}
    store.catalog.update(TRAINING_SETS, {"created_at": OLD}, {"training_set_id": old.training_set_id})

    report = store.retention(now=NOW)
    assert report.offline.views["clicks@1"].profiles_trimmed == 1
    log = LineageLog(store.catalog)
    trimmed, kept = log.training_set(old.training_set_id), log.training_set(new.training_set_id)
    assert trimmed.profile == {"plain.x@1": old.profile["plain.x@1"]}  # plain has no retention
    assert (trimmed.features, trimmed.schemas, trimmed.transforms, trimmed.spine_fingerprint, trimmed.row_count,
            trimmed.columns) == (old.features, old.schemas, old.transforms, old.spine_fingerprint, old.row_count,
                                 old.columns)
    assert kept.profile == new.profile
    [raw] = store.catalog.rows(TRAINING_SETS, {"training_set_id": old.training_set_id})
    assert list(json.loads(raw["profile"])["removed_by_retention"]) == ["clicks.n@1"]
    assert store.retention(now=NOW).offline.views["clicks@1"].profiles_trimmed == 0


def test_the_project_default_applies_to_views_without_their_own(store):
    push_rows(store, (OLD, MID, RECENT))
    store.project.featurehouse_vars["retention"] = "30d"
    report = store.retention(now=NOW)
    assert {v: (c.retention, c.landing_rows) for v, c in report.offline.views.items()} == {
        "clicks@1": (timedelta(days=400), 1), "plain@1": (timedelta(days=30), 2)}
    assert landed(store, "clicks") == [MID, RECENT]  # its own 400d wins over the default
    assert landed(store, "plain") == [RECENT]
    assert (model_rows(store, "clicks"), model_rows(store, "plain")) == (3, 3)


def test_without_any_retention_everything_is_kept(store):
    push_rows(store)
    store.registry.add(view("clicks", "n"))  # clicks@1 without its retention now
    report = store.retention(now=NOW + timedelta(days=5000))
    assert report == {} and report.offline.views == {} and not report.offline.removed_anything
    assert landed(store, "clicks") == landed(store, "plain") == [OLD, RECENT]


def test_audit_events_older_than_the_audit_retention_go(store):
    record_events(store.catalog, [AuditEvent("alice", "read", at=NOW - timedelta(days=100), event_id="old"),
                                  AuditEvent("bob", "read", at=NOW - timedelta(days=10), event_id="new")])

    def events():
        return sorted((r["principal"], r["action"]) for r in store.catalog.rows(AUDIT))

    assert store.retention(now=NOW).offline.audit_rows == 0  # no audit_retention: kept
    assert events() == [("alice", "read"), ("bob", "read")]
    store.project.featurehouse_vars["audit_retention"] = "30d"
    assert store.retention(now=NOW, dry_run=True).offline.audit_rows == 1
    assert events() == [("alice", "read"), ("bob", "read")]
    report = store.retention(now=NOW)
    assert (report.offline.audit_rows, report.offline.audit_cutoff) == (1, NOW - timedelta(days=30))
    assert events() == [("bob", "read"), (store.principal, "retention")]  # the pass itself is audited


@pytest.mark.parametrize("setting", ["retention", "audit_retention"])
def test_a_bad_project_setting_is_an_error_naming_it_and_deletes_nothing(store, setting):
    push_rows(store)
    store.project.featurehouse_vars[setting] = "forever"
    with pytest.raises(InvalidFeatureMetadata, match=f"vars.featurehouse.{setting}: bad duration 'forever'"):
        store.retention(now=NOW)
    store.project.featurehouse_vars[setting] = "0d"
    with pytest.raises(InvalidFeatureMetadata, match=f"vars.featurehouse.{setting}: must be longer than 0"):
        store.retention(now=NOW)
    assert landed(store, "clicks") == [OLD, RECENT]


class _Context:
    def __init__(self, store):
        self._the_store, self.console = store, Console(width=200)

    def store(self):
        return self._the_store


def run_cli(store, *args: str):
    @click.group(cls=FeaturehouseGroup)
    def group() -> None:
        """The real group's error handling around the real `retention` command."""

    group.add_command(retention_command)
    return CliRunner().invoke(group, ["retention", *args], obj=_Context(store))


def test_the_cli_prints_per_view_counts_and_the_audit_rows(store):
    push_rows(store)
    store.project.featurehouse_vars["audit_retention"] = "30d"
    result = run_cli(store, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "dry run" in lines[0] and landed(store, "clicks") == [OLD, RECENT]
    [clicks] = [line for line in lines if "clicks@1" in line]
    assert [c.strip() for c in clicks.split("│")[1:-1]] == ["clicks@1", "400d", "-", "1", "0", "0"]
    assert "audit events older than 30d: 0 would be removed" in result.output
    result = run_cli(store)
    assert result.exit_code == 0, result.output
    assert landed(store, "clicks") == [RECENT]


# -- the registry: meta.featurehouse.retention -------------------------------------------------------


def node(retention):
    return {"unique_id": "model.demo.user_clicks", "resource_type": "model", "name": "user_clicks",
            "database": "warehouse", "schema": "main", "alias": "user_clicks",
            "config": {"meta": {"featurehouse": {"entity": "user", "event_time": "event_time", "retention": retention}}},
            "columns": {c: {"name": c, "data_type": t} for c, t in
                        (("user_id", "bigint"), ("event_time", "timestamp"), ("n", "bigint"))}}


def load(retention):
    registry = registry_from_manifest({"nodes": {"model.demo.user_clicks": node(retention)}},
                                      parse_entities({"user": ["user_id"]}))
    return registry.view("user_clicks")


def test_retention_is_read_from_the_views_meta():
    assert load("400d").retention == timedelta(days=400)
    assert load(None).retention is None


@pytest.mark.parametrize("value, problem", [("400 days", "bad duration '400 days'"), ("0d", "must be longer than 0"),
                                            (True, "bad duration True")])
def test_a_bad_retention_is_an_error_naming_the_model_and_field(value, problem):
    with pytest.raises(InvalidFeatureMetadata) as info:
        load(value)
    assert str(info.value).startswith(f"model 'user_clicks': meta.featurehouse.retention: {problem}")
