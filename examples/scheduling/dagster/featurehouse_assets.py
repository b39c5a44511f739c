"""featurehouse's scheduled job as Dagster assets: dbt build -> sync, checked by parity and freshness.

    dbt_models      the dbt project's models (the feature views among them), built and tested by
                    `dbt build` through dagster-dbt
    online_store    `featurehouse sync`: the warehouse's latest values into the online store
    parity          asset check: online values equal the warehouse's latest rows (a sample per view)
    freshness       asset check: every view within its freshness SLO

featurehouse runs as a command and its exit code decides (docs/guardrails.md, "Exit codes, for cron
and CI"): 0 ok; 1 from a guard is a failed asset check, whose description is the guard's verdict and
whose metadata holds its table; 2 (a usage error) fails the step at once; 3 (a warehouse or online
store that cannot be had now) asks Dagster to retry the step. dbt's own failures (a model, a test)
fail the dbt step as dagster-dbt reports them.

Load it with `dagster dev -f featurehouse_assets.py` (which also runs `dbt deps` and `dbt parse`);
deploy with the manifest built beforehand (`dagster-dbt project prepare-and-package --file
featurehouse_assets.py`, or `dbt parse`). Settings, from the environment:
    FEATUREHOUSE_PROJECT_DIR    the dbt project (default: `dbt/` beside this file)
    FEATUREHOUSE_TARGET         the profile target (default: the profile's own `target:`)
    DBT_PROFILES_DIR            where profiles.yml is (default: the project if it has one, else ~/.dbt)
    FEATUREHOUSE_BIN            the featurehouse command (default: the one installed beside Dagster, else
                                on PATH); point it into featurehouse's own venv if it has one
    FEATUREHOUSE_PARITY_SAMPLE  entities compared per view (default: 1000)
    FEATUREHOUSE_RETRIES        retries of a step that exited 3 (default: 3)
    FEATUREHOUSE_RETRY_DELAY_S  seconds before each (default: 300)
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetSelection,
    DagsterRunStatus,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryRequested,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    schedule,
)
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

PROJECT_DIR = Path(os.environ.get("FEATUREHOUSE_PROJECT_DIR") or Path(__file__).resolve().parent / "dbt")
TARGET = os.environ.get("FEATUREHOUSE_TARGET") or None
# as dbt and featurehouse look for it: the project if it has a profiles.yml, else ~/.dbt
PROFILES_DIR = os.environ.get("DBT_PROFILES_DIR") or str(
    PROJECT_DIR if (PROJECT_DIR / "profiles.yml").is_file() else Path.home() / ".dbt")
PARITY_SAMPLE = os.environ.get("FEATUREHOUSE_PARITY_SAMPLE", "1000")
RETRIES = int(os.environ.get("FEATUREHOUSE_RETRIES", "3"))
RETRY_DELAY_S = float(os.environ.get("FEATUREHOUSE_RETRY_DELAY_S", "300"))

MEANING = {1: "a guard fired", 2: "usage error (or dbt failed)", 3: "a store cannot be had now",
           4: "featurehouse crashed: a bug to report"}


def beside_python(name: str) -> str:
    """A command installed in this Python's environment, else the one on PATH: `dagster dev` and the
    run workers need not have the venv's bin on PATH."""
    path = Path(sys.executable).with_name(name)
    return str(path) if path.is_file() else shutil.which(name) or name


# -- the dbt build: dagster-dbt's assets, one per dbt model, with dbt's tests as asset checks ---------

featurehouse_dbt = DbtProject(project_dir=PROJECT_DIR, target=TARGET, profiles_dir=PROFILES_DIR)
featurehouse_dbt.prepare_if_dev()  # under `dagster dev`: `dbt deps` and `dbt parse` at load


@dbt_assets(manifest=featurehouse_dbt.manifest_path, project=featurehouse_dbt)
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource):
    # Artifacts in the project's own target/, where featurehouse reads when dbt last built each model
    # (dagster-dbt's default, a directory per run, would hide that from `featurehouse sync`).
    yield from dbt.cli(["build"], context=context, target_path=Path("target")).stream()


# -- featurehouse: sync, then the guards ----------------------------------------------------------------


def run_featurehouse(context, step: str, *args: str) -> tuple[int, str]:
    """`featurehouse <global options> ARGS`: its output into the step's log (as it goes) and returned with
    the exit code. A command, not imported: its exit code is the contract, and Dagster and featurehouse
    need not share one environment (FEATUREHOUSE_BIN)."""
    command = [os.environ.get("FEATUREHOUSE_BIN") or beside_python("featurehouse"), "--project-dir", str(PROJECT_DIR)]
    command += ["--target", TARGET] if TARGET else []
    command += ["--profiles-dir", PROFILES_DIR]
    command += list(args)
    context.log.info(f"$ {' '.join(command)}")
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)  # the step's stdout: Dagster's compute log
            lines.append(line)
    return process.returncode, "".join(lines)


def verdict(output: str) -> str:
    """What the CLI said went wrong: its `error: ...` line, or each guard's `✗ ...` lines."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("error:", "✗"))]
    return "; ".join(said) or (lines[-1] if lines else "no output")


def as_text(output: str) -> MetadataValue:
    return MetadataValue.md(f"```\n{output.strip()}\n```")


def fail_step(step: str, code: int, output: str):
    """Exit 3: ask Dagster to try the step again later. Anything else: fail it now (it would say the same)."""
    message = f"featurehouse {step} exited {code} ({MEANING.get(code, 'unexpected')}): {verdict(output)}"
    failure = Failure(description=message, metadata={"output": as_text(output)}, allow_retries=False)
    if code == 3:
        raise RetryRequested(max_retries=RETRIES, seconds_to_wait=RETRY_DELAY_S) from failure
    raise failure


@asset(deps=[dbt_models], description="The feature views' latest values, synced by `featurehouse sync`.")
def online_store(context: AssetExecutionContext) -> MaterializeResult:
    code, output = run_featurehouse(context, "sync", "sync")
    if code != 0:
        fail_step("sync", code, output)
    return MaterializeResult(metadata={"sync": as_text(output)})


def guard(context, name: str, *args: str) -> AssetCheckResult:
    """A guard's exit code as a check result: 0 passed, 1 failed (its verdict as the description)."""
    code, output = run_featurehouse(context, name, name, *args)
    if code not in (0, 1):
        fail_step(name, code, output)
    return AssetCheckResult(passed=code == 0, description=None if code == 0 else verdict(output),
                            metadata={"output": as_text(output)})


# Both checks judge what the sync wrote, side by side: a parity breach does not hide a stale feed.
@asset_check(asset=online_store, description="`featurehouse parity`: online values equal the warehouse's latest rows.")
def parity(context) -> AssetCheckResult:
    return guard(context, "parity", "--sample", PARITY_SAMPLE)


@asset_check(asset=online_store, description="`featurehouse freshness`: every view within its freshness SLO.")
def freshness(context) -> AssetCheckResult:
    return guard(context, "freshness")


# -- every 15 minutes, one run at a time ------------------------------------------------------------------

featurehouse_job = define_asset_job("featurehouse_pipeline", selection=AssetSelection.all())
UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


@schedule(job=featurehouse_job, cron_schedule="*/15 * * * *")
def every_15_minutes(context: ScheduleEvaluationContext):
    # One run at a time, as the cron script's lock: runs would race for the stores.
    running = context.instance.get_runs(
        RunsFilter(job_name=featurehouse_job.name, statuses=UNFINISHED), limit=1)
    if running:
        return SkipReason(f"run {running[0].run_id} is still going")
    return RunRequest()


defs = Definitions(
    assets=[dbt_models, online_store],
    asset_checks=[parity, freshness],
    jobs=[featurehouse_job],
    schedules=[every_15_minutes],
    resources={"dbt": DbtCliResource(project_dir=featurehouse_dbt, dbt_executable=beside_python("dbt"))},
)
