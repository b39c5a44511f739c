"""A Spark standalone cluster on loopback (a master and workers, each a JVM of its own, from the pyspark
package's own `bin/spark-class`), for the tests and benchmarks that prove featurehouse on Spark beyond
one process: the driver (this process, dbt-spark's `method: session`) plans the queries, and executors
in the workers' processes run them, shuffling between each other, as on a real cluster.

A real cluster is the operator's; a dbt-spark profile points a session target at it with
`server_side_parameters: {spark.master: "spark://host:7077"}` (or `yarn`, `k8s://...`), with the
warehouse directory on storage every executor reads (HDFS, S3) and a metastore the driver reaches
(docs/engines.md). This module is not a deployment tool.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from featurehouse.errors import FeaturehouseError


class LocalSparkClusterError(FeaturehouseError):
    """The standalone cluster did not start: pyspark missing, Java missing, or a JVM that exited."""


def spark_home() -> Path:
    """The pyspark package's own Spark distribution (its `bin/spark-class` starts masters and workers)."""
    try:
        import pyspark  # pyright: ignore[reportMissingImports] - the optional `spark` extra
    except ImportError:
        raise LocalSparkClusterError("a Spark standalone cluster needs pyspark: pip install -e '.[spark]'") from None
    return Path(str(pyspark.__file__)).parent


@dataclass
class LocalSparkCluster:
    directory: Path
    workers: int = 1
    cores_per_worker: int = 2
    memory_per_worker: str = "2g"
    processes: list[subprocess.Popen] = field(default_factory=list, repr=False)
    master_port: int = 0
    ui_port: int = 0

    @property
    def url(self) -> str:
        """What a profile's `spark.master` takes."""
        return f"spark://127.0.0.1:{self.master_port}"

    def __enter__(self) -> "LocalSparkCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 120.0) -> "LocalSparkCluster":
        """A master, then the workers, once each answers; the cluster is ready when the master counts
        every worker alive."""
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout_s
        self.master_port, self.ui_port = _free_port(), _free_port()
        try:
            self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                        "--port", str(self.master_port), "--webui-port", str(self.ui_port))
            self._until(deadline, "the Spark master to answer", lambda: self.state() is not None)
            for i in range(self.workers):
                work = self.directory / f"worker-{i}"
                self._spawn(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", self.url,
                            "--host", "127.0.0.1", "--cores", str(self.cores_per_worker),
                            "--memory", self.memory_per_worker, "--webui-port", str(_free_port()),
                            "--work-dir", str(work))
            self._until(deadline, f"{self.workers} Spark worker(s) to register",
                        lambda: (self.state() or {}).get("aliveworkers", 0) >= self.workers)
        except BaseException:
            self.stop()
            raise
        return self

    def state(self) -> dict | None:
        """The master's own status (its web UI's JSON), or None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def stop(self) -> None:
        """Workers first (their executors end with them), then the master."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes = []

    def _spawn(self, name: str, main_class: str, *args: str) -> None:
        env = {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_LOG_DIR": str(self.directory), "SPARK_WORKER_DIR": str(self.directory)}
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115 - the JVM writes it for as long as it runs
        try:
            self.processes.append(subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), main_class, *args], env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True))
        finally:
            log.close()

    def _until(self, deadline: float, what: str, done) -> None:
        while not done():
            for process in self.processes:
                if process.poll() is not None:
                    raise LocalSparkClusterError(f"a Spark JVM exited (code {process.returncode}) while waiting for "
                                                 f"{what}: see the logs in {self.directory}")
            if time.monotonic() > deadline:
                raise LocalSparkClusterError(f"timed out waiting for {what}: see the logs in {self.directory}")
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
