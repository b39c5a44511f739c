"""OpenLineage events for recorded training sets, where a team runs an OpenLineage backend (Marquez,
DataHub, a cloud catalogue): the feature views' relations in, the training set out.

Only with the `openlineage-python` client installed (`pip install 'featurehouse[openlineage]'`) and
configured the client's own way (OPENLINEAGE_URL, OPENLINEAGE_CONFIG, OPENLINEAGE__* variables or an
openlineage.yml); otherwise nothing is sent. A backend that is down never fails a training set.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from featurehouse.project import DbtProject
from featurehouse.registry.model import Registry

log = logging.getLogger(__name__)
PRODUCER = "https://github.com/featurehouse/featurehouse"


def configured() -> bool:
    if os.environ.get("OPENLINEAGE_DISABLED", "").lower() == "true":
        return False
    if os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG"):
        return True
    if any(k.startswith("OPENLINEAGE__") for k in os.environ):
        return True
    return (Path.cwd() / "openlineage.yml").is_file() or (Path.home() / ".openlineage" / "openlineage.yml").is_file()


def warehouse_namespace(project: DbtProject | None, dialect: str) -> str:
    """The dataset namespace of the offline store, after OpenLineage's naming conventions."""
    if project is None:
        return f"{dialect}://local"
    target = project.target()
    s = target.settings
    if target.type == "duckdb":
        path = Path(str(s.get("path", ":memory:")))
        return f"duckdb://{(project.dir / path).resolve() if not path.is_absolute() else path}"
    return f"{target.type}://{s.get('host', 'localhost')}:{s.get('port', 5432)}"


def emit_training_set(registry: Registry, project: DbtProject | None, dialect: str, training_set, record) -> bool:
    """One COMPLETE run event for a recorded training set; True when it was sent."""
    try:
        from openlineage.client import OpenLineageClient
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import schema_dataset
    except ImportError:
        return False
    if not configured():
        return False
    namespace = warehouse_namespace(project, dialect)
    project_name = project.name if project is not None else "featurehouse"
    inputs = []
    for view_ref in sorted(record.transforms):
        name, _, version = view_ref.partition("@")
        view = registry.view(name, int(version))
        relation = ".".join(p for p in (view.relation.database, view.relation.schema, view.relation.identifier) if p)
        fields = [schema_dataset.SchemaDatasetFacetFields(name=f.column, type=f.data_type) for f in view.features]
        inputs.append(InputDataset(namespace, relation, facets={"schema": schema_dataset.SchemaDatasetFacet(fields=fields)}))
    columns = record.columns or {}
    out_fields = [schema_dataset.SchemaDatasetFacetFields(name=columns.get(f, f), type=record.schemas.get(f))
                  for f in record.features]
    output = OutputDataset(f"featurehouse://{project_name}", f"training_sets/{record.training_set_id}",
                           facets={"schema": schema_dataset.SchemaDatasetFacet(fields=out_fields)})
    event = RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(timezone.utc).isoformat(),
                     run=Run(runId=str(uuid.uuid4())),
                     job=Job(namespace=f"featurehouse://{project_name}", name=f"training_set.{record.name or 'adhoc'}"),
                     producer=PRODUCER, inputs=inputs, outputs=[output])
    try:
        OpenLineageClient().emit(event)
    except Exception as e:  # noqa: BLE001 - lineage is reported, never a reason to lose a training set
        log.warning("OpenLineage event for training set %s not sent: %s", record.training_set_id, e)
        return False
    return True
