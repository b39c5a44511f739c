"""`featurehouse serve`: the HTTP serving API."""

from __future__ import annotations

import os
from pathlib import Path

import click
import yaml

from featurehouse.cli.context import CliContext
from featurehouse.errors import FeaturehouseError

SETTINGS = ("redis_url", "max_ids", "timeout_s", "host", "port", "workers", "log_sample_rate")


def load_settings(config: Path | None) -> dict:
    """A YAML file's settings, overridden by FEATUREHOUSE_<NAME> environment variables."""
    settings: dict = {}
    if config is not None:
        if not config.is_file():
            raise FeaturehouseError(f"--config {config}: no such file")
        try:
            settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise FeaturehouseError(f"--config {config}: not valid YAML: {' '.join(str(e).split())}") from None
        if not isinstance(settings, dict):
            raise FeaturehouseError(f"--config {config}: expected a mapping of settings ({', '.join(SETTINGS)})")
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise FeaturehouseError(f"--config {config}: unknown setting '{unknown[0]}' (known: {', '.join(SETTINGS)})")
    for name in SETTINGS:
        value = os.environ.get(f"FEATUREHOUSE_{name.upper()}")
        if value is not None:
            settings[name] = value
    return settings


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default 8000).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default 1).")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"YAML file with any of: {', '.join(SETTINGS)}; FEATUREHOUSE_<NAME> env vars override it.")
@click.pass_obj
def serve(obj: CliContext, host, port, workers, config) -> None:
    """Serve feature vectors over HTTP (granian, ASGI): GET /v1/features/{entityType}/{entityId}.

    Interactive docs at /docs, OpenAPI at /openapi.json, health at /healthz and /readyz, Prometheus
    metrics at /metrics (with --workers N, any worker's /metrics adds up all of them). The online
    store is FEATUREHOUSE_REDIS_URL, or the project's embedded Redis, which this process then owns for
    as long as it serves.
    """
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    settings = load_settings(config)
    try:
        rate = float(settings.get("log_sample_rate", 0.01))
        if not 0.0 <= rate <= 1.0:
            raise ValueError
    except ValueError:
        raise FeaturehouseError(f"log_sample_rate {settings.get('log_sample_rate')!r}: give a share between 0 and 1 "
                                "(0.01 logs 1% of served vectors for `featurehouse skew` and `drift`)") from None
    # every setting checked before anything starts: a worker must not be the one to find a bad value
    max_ids = _whole(settings.get("max_ids", 1000), "max_ids", 1, 100_000)
    timeout_s = _seconds(settings.get("timeout_s", 0.5), "timeout_s")
    host = host or settings.get("host", "127.0.0.1")
    port = _whole(port or settings.get("port", 8000), "port", 1, 65535)
    workers = _whole(workers or settings.get("workers", 1), "workers", 1, 1024)
    store = obj.store()
    project = store.project
    assert project is not None  # a CLI store is always over a dbt project
    # The registry is loaded once, here, by the loader every process uses; workers read this snapshot.
    from featurehouse.registry.snapshot import save_snapshot

    snapshot = save_snapshot(store.registry, project.dir / ".featurehouse" / "serving" / f"registry-{os.getpid()}.pickle")
    store.close_warehouse()  # a DuckDB file stays free for syncs while we serve
    url = settings.get("redis_url") or os.environ.get("FEATUREHOUSE_REDIS_URL")
    if not url:
        url = store.online.embedded.url if store.online.embedded else None
    assert url is not None  # no Redis URL given: the online store is the project's embedded one
    store.online.ping()
    os.environ.update({
        "FEATUREHOUSE_SERVING_WORKER": "1", "FEATUREHOUSE_PROJECT_DIR": str(project.dir),
        "FEATUREHOUSE_REGISTRY_SNAPSHOT": str(snapshot),
        "FEATUREHOUSE_REDIS_URL": url, "FEATUREHOUSE_MAX_IDS": str(max_ids), "FEATUREHOUSE_TIMEOUT_S": str(timeout_s),
        "FEATUREHOUSE_MAX_CLOCK_SKEW_S": str(store.max_clock_skew.total_seconds()),
        "FEATUREHOUSE_LOG_SAMPLE_RATE": str(settings.get("log_sample_rate", 0.01)),
    })
    if project.target_name:
        os.environ["FEATUREHOUSE_TARGET"] = project.target_name
    if workers > 1:
        multiprocess_metrics_dir(project.dir)
    obj.console.print(f"serving on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''}); "
                      f"docs at http://{host}:{port}/docs")
    # uvloop: a third more requests per second than asyncio's loop on the same handler (bench/serve.py)
    try:
        Granian("featurehouse.serving.asgi:app", address=host, port=port, workers=workers, interface=Interfaces.ASGI,
                loop=Loops.uvloop, http=HTTPModes.http1, websockets=False, log_enabled=False).serve()
    finally:
        snapshot.unlink(missing_ok=True)


def _whole(value, name: str, low: int, high: int) -> int:
    """A whole-number setting within bounds, or an error naming it (settings come from YAML or env)."""
    try:
        number = int(str(value))
    except ValueError:
        raise FeaturehouseError(f"{name} {value!r}: give a whole number from {low} to {high}") from None
    if not low <= number <= high:
        raise FeaturehouseError(f"{name} {number}: give a whole number from {low} to {high}")
    return number


def _seconds(value, name: str) -> float:
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= 3600:
        raise FeaturehouseError(f"{name} {value!r}: give a number of seconds above 0 (at most 3600)")
    return seconds


def multiprocess_metrics_dir(project_dir: Path) -> Path:
    """Workers write their metrics under <project>/.featurehouse/metrics (emptied at start) and any
    worker's /metrics adds them up: prometheus_client's multiprocess mode. An existing
    PROMETHEUS_MULTIPROC_DIR is respected."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or project_dir / ".featurehouse" / "metrics")
    if path.is_dir():
        for child in path.glob("*.db"):
            child.unlink()
    else:
        path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path

