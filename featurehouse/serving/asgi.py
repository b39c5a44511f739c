"""The ASGI app of a `featurehouse serve` worker, built from the environment the parent set.

FEATUREHOUSE_PROJECT_DIR (the dbt project; its manifest is read, dbt is not run), FEATUREHOUSE_TARGET,
FEATUREHOUSE_REDIS_URL, FEATUREHOUSE_MAX_IDS, FEATUREHOUSE_TIMEOUT_S,
FEATUREHOUSE_LOG_SAMPLE_RATE. Serving never opens the
warehouse: the registry comes from dbt's manifest and active versions from the online store.
"""

from __future__ import annotations

import gc
import os

from featurehouse.project import DbtProject
from featurehouse.registry.manifest import parse_entities, registry_from_manifest
from featurehouse.registry.model import Registry
from featurehouse.serving.app import ServeConfig, create_app


def serving_registry(project_dir: str, target: str | None = None) -> Registry:
    project = DbtProject(project_dir, target=target)
    manifest = project.manifest()
    return registry_from_manifest(manifest, parse_entities(project.featurehouse_vars.get("entities")))


def config_from_env() -> ServeConfig:
    return ServeConfig(redis_url=os.environ["FEATUREHOUSE_REDIS_URL"],
                       max_ids=int(os.environ.get("FEATUREHOUSE_MAX_IDS", "1000")),
                       timeout_s=float(os.environ.get("FEATUREHOUSE_TIMEOUT_S", "0.5")),
                       log_sample_rate=float(os.environ.get("FEATUREHOUSE_LOG_SAMPLE_RATE", "0.01")))


def build():
    app = create_app(serving_registry(os.environ.get("FEATUREHOUSE_PROJECT_DIR", "."),
                                      os.environ.get("FEATUREHOUSE_TARGET")), config_from_env())
    # What startup built (registry, plans, the app) lives as long as the worker: moved out of the
    # collector's reach, a full collection no longer walks it, which trims the latency tail.
    gc.collect()
    gc.freeze()
    return app


app = build() if os.environ.get("FEATUREHOUSE_SERVING_WORKER") == "1" else None
