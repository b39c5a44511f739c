"""The ASGI app of a `featurehouse serve` worker, built from the environment the parent set: the worker's
composition root, mounting the web catalog (featurehouse/ui) on the serving API.

FEATUREHOUSE_REGISTRY_SNAPSHOT (the registry the parent loaded, see registry/loader.py),
FEATUREHOUSE_PROJECT_DIR, FEATUREHOUSE_TARGET, FEATUREHOUSE_REDIS_URL, FEATUREHOUSE_MAX_IDS,
FEATUREHOUSE_TIMEOUT_S, FEATUREHOUSE_LOG_SAMPLE_RATE, FEATUREHOUSE_AUTH (token | none),
FEATUREHOUSE_PUSH, FEATUREHOUSE_NEAR_CACHE, FEATUREHOUSE_REPLICA_READS. A worker never opens the warehouse: its
registry is the parent's, and active versions and column layouts come from the online store.
"""

from __future__ import annotations

import gc
import logging
import os

from featurehouse.online.replicas import replica_reads_config
from featurehouse.registry.model import Registry
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.near_cache import near_cache_config
from featurehouse.ui.routes import catalog_pages


def serving_registry() -> Registry:
    """The registry `featurehouse serve` loaded (with the one loader) and saved for its workers."""
    from featurehouse.errors import ProjectError
    from featurehouse.registry.snapshot import load_snapshot

    snapshot = os.environ.get("FEATUREHOUSE_REGISTRY_SNAPSHOT")
    if not snapshot:
        raise ProjectError("FEATUREHOUSE_REGISTRY_SNAPSHOT is not set: start serving with `featurehouse serve`, "
                           "which loads the registry once and hands it to its workers")
    return load_snapshot(snapshot)


def config_from_env() -> ServeConfig:
    return ServeConfig(redis_url=os.environ["FEATUREHOUSE_REDIS_URL"],
                       max_ids=int(os.environ.get("FEATUREHOUSE_MAX_IDS", "1000")),
                       timeout_s=float(os.environ.get("FEATUREHOUSE_TIMEOUT_S", "0.5")),
                       log_sample_rate=float(os.environ.get("FEATUREHOUSE_LOG_SAMPLE_RATE", "0.01")),
                       max_clock_skew_s=float(os.environ.get("FEATUREHOUSE_MAX_CLOCK_SKEW_S", "300")),
                       auth=os.environ.get("FEATUREHOUSE_AUTH", "token"),
                       push=os.environ.get("FEATUREHOUSE_PUSH", "false") == "true",
                       near_cache=near_cache_config(os.environ.get("FEATUREHOUSE_NEAR_CACHE")),
                       replica_reads=replica_reads_config(os.environ.get("FEATUREHOUSE_REPLICA_READS")))


def log_to_stderr() -> None:
    """Timestamped lines on stderr for the 5xx log (featurehouse.serving: request id, traceback), unless the
    process configured logging itself; granian's own log is off."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def build():
    log_to_stderr()
    registry = serving_registry()
    app = create_app(registry, config_from_env(), pages=catalog_pages(registry, os.environ.get("FEATUREHOUSE_PROJECT_NAME", "")))
    # What startup built (registry, plans, the app) lives as long as the worker: moved out of the
    # collector's reach, a full collection no longer walks it, which trims the latency tail.
    gc.collect()
    gc.freeze()
    return app


app = build() if os.environ.get("FEATUREHOUSE_SERVING_WORKER") == "1" else None
