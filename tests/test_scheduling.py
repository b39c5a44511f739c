"""Scheduling examples that run (issue 12): the cron script, the Airflow DAG and the Dagster assets of
examples/scheduling/ run build -> sync -> parity -> freshness on a copy of the demo (DuckDB and its
embedded Redis), and turn featurehouse's exit codes into what each scheduler alerts on: 0 ok, 1 a guard
fired, 2 a usage error, 3 a store cannot be had now (the only one retried).

Airflow and Dagster run in venvs of their own (examples/scheduling/venv.sh), named by
FEATUREHOUSE_AIRFLOW_PYTHON and FEATUREHOUSE_DAGSTER_PYTHON; without them their tests are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from featurehouse.demo.breaks import FRESHNESS_VIEW, PARITY_COLUMN, PARITY_VIEW
from featurehouse.online.embedded import project_server_dir, stop_server
from tests.test_demo import copy_example, invoke, run_demo

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "scheduling"
PIPELINE = EXAMPLES / "cron" / "featurehouse_pipeline.sh"
FEATUREHOUSE = str(Path(sys.executable).with_name("featurehouse"))
# What a scheduler's environment must not bring in: the test says where the project and the stores are.
NOT_INHERITED = ("FEATUREHOUSE_REDIS_URL", "FEATUREHOUSE_PROJECT_DIR", "FEATUREHOUSE_TARGET", "DBT_PROFILES_DIR",
                 "FEATUREHOUSE_BIN", "FEATUREHOUSE_RETRIES", "FEATUREHOUSE_RETRY_DELAY_S", "PROMETHEUS_MULTIPROC_DIR")


# -- the demo's state: one healthy, one where both guards fire --------------------------------------------


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """The demo's end state: history up to now, synced, a few seconds streamed; every guard green for
    the next quarter of an hour (card_txn_stats' 15-minute SLO)."""
    project = copy_example(tmp_path_factory.mktemp("healthy"))
    run_demo(project, None, "--no-serve")
    yield project
    stop_server(project_server_dir(project))


@pytest.fixture(scope="module")
def breached(tmp_path_factory):
    """The demo with its feed stopped two hours ago (history ends then: every streamed view is past its
    SLO), and a bad writer's value in the online store (`demo --break parity`). Yields (project, the
    parity break's `entity N: online X, warehouse Y` line)."""
    project = copy_example(tmp_path_factory.mktemp("breached"))
    stopped = datetime.now(timezone.utc) - timedelta(hours=2)
    run_demo(project, None, "--no-serve", "--end", stopped.strftime("%Y-%m-%dT%H:%M:%S"))
    result = invoke(project, "demo", "--break", "parity")
    assert result.exit_code == 0, result.output
    found = re.search(r"entity \d+: online \S+, warehouse \S+", result.output)
    assert found, result.output
    yield project, found.group(0)
    stop_server(project_server_dir(project))


def scheduler_env(project: Path, **settings: str) -> dict[str, str]:
    """This environment, the example's settings pointing at `project` and its embedded Redis."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return {**env, "FEATUREHOUSE_PROJECT_DIR": str(project), **settings}


def dead_redis_url() -> str:
    """A Redis URL nobody answers: a port just free on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


# -- cron: examples/scheduling/cron/featurehouse_pipeline.sh ------------------------------------------------


def pipeline(project: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = scheduler_env(project, FEATUREHOUSE_BIN=FEATUREHOUSE, **settings)
    return subprocess.run(["bash", str(PIPELINE)], env=env, capture_output=True, text=True, timeout=600)


def steps_run(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The steps the script started, in order, one entry per try."""
    return re.findall(r"featurehouse pipeline: (\w+): featurehouse ", done.stdout)


def test_cron_a_healthy_project_exits_0_after_every_step(healthy):
    done = pipeline(healthy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert steps_run(done) == ["build", "sync", "parity", "freshness"]
    assert done.stdout.rstrip().endswith("featurehouse pipeline: ok: build, sync, parity, freshness")


def test_cron_a_guard_that_fires_exits_1_naming_each_failed_step_and_what_the_guard_said(breached):
    project, parity_example = breached
    done = pipeline(project)
    assert done.returncode == 1, done.stdout + done.stderr
    assert steps_run(done) == ["build", "sync", "parity", "freshness"]  # a parity breach does not hide the stale feed
    assert done.stderr.rstrip().endswith(
        "FAILED: parity (exit 1: a guard fired), freshness (exit 1: a guard fired)")
    assert parity_example in done.stdout  # the CLI's own verdicts, for whoever reads cron's mail
    assert re.search(rf"✗ {FRESHNESS_VIEW}@1: .*SLO", done.stdout), done.stdout


def test_cron_a_store_that_cannot_be_had_is_retried_then_exits_3(healthy):
    done = pipeline(healthy, FEATUREHOUSE_REDIS_URL=dead_redis_url(), FEATUREHOUSE_RETRIES="1",
                    FEATUREHOUSE_RETRY_DELAY_S="0")
    assert done.returncode == 3, done.stdout + done.stderr
    assert steps_run(done) == ["build", "sync", "sync"]  # the guards do not judge a sync that did not happen
    assert "error: online store unreachable" in done.stderr
    assert done.stderr.rstrip().endswith("FAILED: sync (exit 3: a store cannot be had now)")


def test_cron_a_usage_error_exits_2_without_retrying(healthy):
    done = pipeline(healthy, FEATUREHOUSE_TARGET="no_such_target", FEATUREHOUSE_RETRIES="2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert steps_run(done) == ["build"]
    assert "target 'no_such_target' not found" in done.stderr
    assert done.stderr.rstrip().endswith("FAILED: build (exit 2: usage error (or dbt failed))")


def test_cron_a_run_that_finds_the_previous_one_still_going_exits_3_at_once(tmp_path):
    """The lock is the project's `.featurehouse/pipeline.lock`; held, no step starts (the project here
    is not even one: a step that ran would exit 2)."""
    lock = tmp_path / ".featurehouse" / "pipeline.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen(["flock", str(lock), "-c", "echo held; read _"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = pipeline(tmp_path)
    finally:
        holder.communicate("\n", timeout=30)
    assert done.returncode == 3, done.stdout + done.stderr
    assert steps_run(done) == []
    assert f"another run still holds {lock}" in done.stderr


# -- the schedulers' own venvs ------------------------------------------------------------------------------


def scheduler_python(name: str, variable: str) -> str:
    python = os.environ.get(variable)
    if not python:
        pytest.skip(f"{name} example tests skipped: set {variable} (`bash examples/scheduling/venv.sh "
                    f"{name.lower()}` makes the venv and prints it)")
    if not Path(python).is_file():
        pytest.fail(f"{variable}={python}: no such file")
    return python


def result_of(done: subprocess.CompletedProcess[str]) -> dict:
    """The driver's last line, `RESULT {json}`."""
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-5000:] + done.stderr[-5000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


# -- Airflow: examples/scheduling/airflow/featurehouse_dag.py, by dag.test() --------------------------------

AIRFLOW_DRIVER = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("featurehouse_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
run = module.pipeline.test(mark_success_pattern=sys.argv[2] or None)
value = lambda state: getattr(state, "value", state)
tasks = {ti.task_id: {"state": value(ti.state), "tries": ti.try_number} for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"state": value(run.state), "tasks": tasks}))
"""


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """(the Airflow venv's python, an AIRFLOW_HOME on SQLite, migrated, with the example in its DAGs folder)."""
    python = scheduler_python("Airflow", "FEATUREHOUSE_AIRFLOW_PYTHON")
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    shutil.copy(EXAMPLES / "airflow" / "featurehouse_dag.py", home / "dags")  # as a user installs it
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run([python, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return python, home


def dag_test(airflow, project: Path, mark_success: str = "", **settings: str) -> tuple[dict, str]:
    """One run of the DAG in process (dag.test()): (its state and each task's state and tries, its log)."""
    python, home = airflow
    env = scheduler_env(project, AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", **settings)
    done = subprocess.run([python, "-c", AIRFLOW_DRIVER, str(home / "dags" / "featurehouse_dag.py"), mark_success],
                          env=env, cwd=home, capture_output=True, text=True, timeout=900)
    return result_of(done), done.stdout + done.stderr


def states(run: dict) -> dict[str, str]:
    return {task: ti["state"] for task, ti in run["tasks"].items()}


def test_airflow_a_healthy_project_runs_every_task_green(airflow, healthy):
    run, _log = dag_test(airflow, healthy)
    assert run["state"] == "success"
    assert states(run) == {"build": "success", "sync": "success", "parity": "success", "freshness": "success"}


def test_airflow_a_guard_that_fires_fails_its_task_at_once_with_the_guards_verdict(airflow, breached):
    project, parity_example = breached
    run, log = dag_test(airflow, project, FEATUREHOUSE_RETRIES="2", FEATUREHOUSE_RETRY_DELAY_S="0")
    assert run["state"] == "failed"
    assert states(run) == {"build": "success", "sync": "success", "parity": "failed", "freshness": "failed"}
    assert run["tasks"]["parity"]["tries"] == run["tasks"]["freshness"]["tries"] == 1  # not retried
    assert f"featurehouse parity exited 1 (a guard fired): ✗ {PARITY_VIEW}.{PARITY_COLUMN}@1: " in log
    assert parity_example in log  # the CLI's table, in the task log
    assert re.search(rf"featurehouse freshness exited 1 \(a guard fired\): ✗ .*{FRESHNESS_VIEW}@1: .*SLO", log), log[-5000:]


def test_airflow_a_store_that_cannot_be_had_is_retried_then_fails_the_task(airflow, healthy):
    """Exit 3 is the one code Airflow retries (build is marked done: only sync meets the dead store)."""
    run, log = dag_test(airflow, healthy, mark_success="build", FEATUREHOUSE_REDIS_URL=dead_redis_url(),
                        FEATUREHOUSE_RETRIES="1", FEATUREHOUSE_RETRY_DELAY_S="0")
    assert run["state"] == "failed"
    assert states(run) == {"build": "success", "sync": "failed", "parity": "upstream_failed",
                           "freshness": "upstream_failed"}
    assert run["tasks"]["sync"]["tries"] == 2
    assert "featurehouse sync exited 3 (a store cannot be had now): error: online store unreachable" in log


# -- Dagster: examples/scheduling/dagster/featurehouse_assets.py, by materialize() ---------------------------

DAGSTER_DRIVER = r"""
import importlib.util, json, sys
from dagster import AssetKey, DagsterEventType, materialize
spec = importlib.util.spec_from_file_location("featurehouse_assets", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
selection = [AssetKey(key) for key in sys.argv[2:]] or None

def said(error):  # an error's message and its causes': what led to "Exceeded max_retries", say
    return error.message.strip() + ("\n" + said(error.cause) if error.cause else "")

result = materialize([m.dbt_models, m.online_store, m.parity, m.freshness], resources=m.defs.resources,
                     selection=selection, raise_on_error=False)
print("RESULT " + json.dumps({
    "success": result.success,
    "checks": {e.check_name: {"passed": e.passed, "description": e.description}
               for e in result.get_asset_check_evaluations() if e.check_name in ("parity", "freshness")},
    "failed_steps": {e.step_key: said(e.event_specific_data.error) for e in result.get_step_failure_events()},
    "retried_steps": [e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY],
    "materialized": sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events()),
}))
"""


@pytest.fixture(scope="module")
def dagster(tmp_path_factory):
    """(the Dagster venv's python, the example copied where a user would keep it)."""
    python = scheduler_python("Dagster", "FEATUREHOUSE_DAGSTER_PYTHON")
    code = tmp_path_factory.mktemp("dagster-code")
    shutil.copy(EXAMPLES / "dagster" / "featurehouse_assets.py", code)
    return python, code


def dagster_materialize(dagster, project: Path, *selection: str, **settings: str) -> tuple[dict, str]:
    """One in-process run of the example's assets and checks (materialize()): its outcome, and its log."""
    python, code = dagster
    env = scheduler_env(project, DAGSTER_HOME=str(code), **settings)
    done = subprocess.run([python, "-c", DAGSTER_DRIVER, str(code / "featurehouse_assets.py"), *selection], env=env,
                          cwd=code, capture_output=True, text=True, timeout=900)
    return result_of(done), done.stdout + done.stderr


def test_dagster_a_healthy_project_materializes_every_asset_and_passes_both_checks(dagster, healthy):
    run, _log = dagster_materialize(dagster, healthy)
    assert run["success"] and not run["failed_steps"]
    assert {"user_txn_stats", "card_txn_stats", "online_store"} <= set(run["materialized"])  # dbt's models, then sync
    assert run["checks"] == {"parity": {"passed": True, "description": None},
                             "freshness": {"passed": True, "description": None}}


def test_dagster_a_guard_that_fires_fails_its_check_with_the_guards_verdict(dagster, breached):
    project, _parity_example = breached
    run, _log = dagster_materialize(dagster, project)
    assert "online_store" in run["materialized"] and not run["failed_steps"] and not run["retried_steps"]
    assert run["checks"]["parity"]["passed"] is False
    assert run["checks"]["parity"]["description"].startswith(f"✗ {PARITY_VIEW}.{PARITY_COLUMN}@1: ")
    assert run["checks"]["freshness"]["passed"] is False
    assert re.search(rf"✗ {FRESHNESS_VIEW}@1: .*SLO", run["checks"]["freshness"]["description"]), run["checks"]


def test_dagster_a_store_that_cannot_be_had_is_retried_then_fails_the_sync(dagster, healthy):
    """Exit 3 asks Dagster for a retry (only the sync is selected: it alone meets the dead store)."""
    run, _log = dagster_materialize(dagster, healthy, "online_store", FEATUREHOUSE_REDIS_URL=dead_redis_url(),
                                    FEATUREHOUSE_RETRIES="1", FEATUREHOUSE_RETRY_DELAY_S="0")
    assert not run["success"]
    assert run["retried_steps"] == ["online_store"]
    assert list(run["failed_steps"]) == ["online_store"]
    assert "featurehouse sync exited 3 (a store cannot be had now): error: online store unreachable" in \
        run["failed_steps"]["online_store"]
    assert "online_store" not in run["materialized"]
