"""featurehouse's scheduled job as an Airflow DAG: build -> sync -> parity and freshness.

    build      `dbt build` of the feature views (and their tests), then the registry is validated
    sync       the warehouse's latest values into the online store (incremental)
    parity     online values equal the warehouse's latest rows (a sample of entities per view)
    freshness  every view within its freshness SLO

Each task runs the `featurehouse` command and acts on its exit code (docs/guardrails.md, "Exit codes,
for cron and CI"): 0 ok; 1 a guard fired and 2 a usage error fail the task at once (retrying would
say the same); 3, a warehouse or online store that cannot be had now, fails the try and Airflow
retries it. The CLI's tables are in the task log, and its verdict is the failure's message.

Copy this file into your DAGs folder. Settings, from the environment of the Airflow workers:
    FEATUREHOUSE_PROJECT_DIR    the dbt project (default: `dbt/` beside this file)
    FEATUREHOUSE_TARGET         the profile target (default: the profile's own `target:`)
    DBT_PROFILES_DIR            where profiles.yml is (default: the project if it has one, else ~/.dbt)
    FEATUREHOUSE_BIN            the featurehouse command (default: the one installed beside Airflow, else
                                on PATH); point it into featurehouse's own venv if it has one
    FEATUREHOUSE_PARITY_SAMPLE  entities compared per view (default: 1000)
    FEATUREHOUSE_RETRIES        retries of a try that exited 3 (default: 3)
    FEATUREHOUSE_RETRY_DELAY_S  seconds before each (default: 300)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

PROJECT_DIR = os.environ.get("FEATUREHOUSE_PROJECT_DIR") or str(Path(__file__).resolve().parent / "dbt")
TARGET = os.environ.get("FEATUREHOUSE_TARGET")
PROFILES_DIR = os.environ.get("DBT_PROFILES_DIR")
PARITY_SAMPLE = os.environ.get("FEATUREHOUSE_PARITY_SAMPLE", "1000")
RETRIES = int(os.environ.get("FEATUREHOUSE_RETRIES", "3"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("FEATUREHOUSE_RETRY_DELAY_S", "300")))

MEANING = {1: "a guard fired", 2: "usage error (or dbt failed)", 3: "a store cannot be had now",
           4: "featurehouse crashed: a bug to report"}


def featurehouse_command() -> str:
    """FEATUREHOUSE_BIN, else the `featurehouse` installed in Airflow's own environment, else PATH's."""
    beside = Path(sys.executable).with_name("featurehouse")
    return os.environ.get("FEATUREHOUSE_BIN") or (str(beside) if beside.is_file() else shutil.which("featurehouse")
                                                 or "featurehouse")


def verdict(lines: list[str]) -> str:
    """What the CLI said went wrong: its `error: ...` line, or each guard's `✗ ...` lines."""
    said = [line.strip() for line in lines if line.lstrip().startswith(("error:", "✗"))]
    return "; ".join(said) or (lines[-1].strip() if lines else "no output")


def run_featurehouse(step: str, *args: str) -> None:
    """Run `featurehouse <global options> ARGS`, its output into the task log, and turn its exit code into
    the task's state. featurehouse runs as a command, not imported: its exit code is the contract, and
    Airflow and featurehouse need not share one environment (FEATUREHOUSE_BIN)."""
    command = [featurehouse_command(), "--project-dir", PROJECT_DIR]
    command += ["--target", TARGET] if TARGET else []
    command += ["--profiles-dir", PROFILES_DIR] if PROFILES_DIR else []
    command += list(args)
    print(f"$ {' '.join(command)}", flush=True)
    tail: deque[str] = deque(maxlen=200)  # enough for the guards' verdict lines
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:  # streamed: a long build shows progress in the log as it goes
            print(line, end="", flush=True)
            tail.append(line)
    code = process.returncode
    if code == 0:
        return
    message = f"featurehouse {step} exited {code} ({MEANING.get(code, 'unexpected')}): {verdict(list(tail))}"
    if code == 3:
        raise AirflowException(message)  # retried: the store may be back by the next try
    raise AirflowFailException(message)  # not retried: it would say the same again


@dag(
    schedule="*/15 * * * *",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,  # a missed run is not worth replaying: the next one syncs everything new
    max_active_runs=1,  # one run at a time, as the cron script's lock: runs would race for the stores
    dagrun_timeout=timedelta(hours=1),
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY, "execution_timeout": timedelta(minutes=45)},
    tags=["featurehouse"],
    doc_md=__doc__,
)
def featurehouse_pipeline():
    @task
    def build() -> None:
        run_featurehouse("build", "build")

    @task
    def sync() -> None:
        run_featurehouse("sync", "sync")

    @task
    def parity() -> None:
        run_featurehouse("parity", "parity", "--sample", PARITY_SAMPLE)

    @task
    def freshness() -> None:
        run_featurehouse("freshness", "freshness")

    # The guards judge what sync wrote, side by side: a parity breach does not hide a stale feed.
    build() >> sync() >> [parity(), freshness()]


pipeline = featurehouse_pipeline()

if __name__ == "__main__":  # `python featurehouse_dag.py`: one run, in this process, no scheduler needed
    pipeline.test()
