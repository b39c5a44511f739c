"""Logic changes are versions: a published view@version whose SQL changed while its version did not.

Training reads the rebuilt relation at once, while the online store keeps values computed by the old
SQL until they change (an equal event time and created_at is not "newer"): the two paths then
disagree and no guard of the schema notices. So a changed dbt node checksum under a published
version fails `featurehouse check`, unless the view declares the change as a restatement
(`meta.featurehouse.restatement: <reason>`), which the next sync applies in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from featurehouse.offline.published import PublishedSchema
from featurehouse.registry.model import Registry


@dataclass(frozen=True)
class LogicChange:
    view: str
    version: int
    published_ref: str  # dbt unique_id@checksum when the version was published (or last restated)
    current_ref: str
    restatement: str | None  # the declared reason, when the change is a deliberate in-place correction
    next_version: int

    @property
    def ok(self) -> bool:
        return self.restatement is not None

    @property
    def message(self) -> str:
        name = f"{self.view}@{self.version}"
        if self.ok:
            return f"{name}: SQL changed, declared a restatement ({self.restatement}): the next sync corrects it in place"
        return (f"{name}: its SQL changed since it was published (checksum {_checksum(self.published_ref)} -> "
                f"{_checksum(self.current_ref)}) but its version did not (metadata edits in config() alone do not "
                f"count): declare version {self.next_version} in a model of its own (a dbt model version, or a new model "
                f"with meta.featurehouse.version: {self.next_version}; {name}'s model stays as it was) and "
                f"`featurehouse backfill {self.view} --version {self.next_version}` then `promote`, or, for a "
                f"deliberate correction, declare meta.featurehouse.restatement: <reason> (or `sync --restate "
                f"{self.view}`)")


def _checksum(ref: str) -> str:
    return ref.rpartition("@")[2][:12] or "?"


def logic_changes(registry: Registry, published: dict[tuple[str, int], PublishedSchema]) -> list[LogicChange]:
    """Every published view@version whose dbt node checksum is no longer the published one."""
    changes = []
    for (name, version), record in sorted(published.items()):
        if (name, version) not in registry.views or not record.transform_ref:
            continue
        view = registry.views[(name, version)]
        current = f"{view.unique_id}@{view.checksum}"
        if not view.checksum or record.transform_ref == current:
            continue  # not a byte changed
        if record.logic_checksum and record.logic_checksum == view.logic_checksum:
            continue  # only config(), comments or spacing changed
        changes.append(LogicChange(name, version, record.transform_ref, current, view.restatement,
                                   max(registry.versions(name)) + 1))
    return changes
