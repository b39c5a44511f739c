"""Exception classes. Each names the thing the user got wrong, in one line."""


class FeaturehouseError(Exception):
    """Base class: a problem the user can fix. The CLI prints it as one line and exits 2."""


class InfrastructureError(FeaturehouseError):
    """A store featurehouse needs cannot be had now (the warehouse down or locked, the online store not
    answering): nothing to fix in the project, worth retrying. The CLI prints one line and exits 3, so
    cron and CI can tell it from a user error (2) and a guard that fired (1)."""


class ProjectError(FeaturehouseError):
    """The dbt project cannot be found, parsed or connected to."""


class WarehouseUnavailable(ProjectError, InfrastructureError):
    """The warehouse is configured right but cannot be reached now (a DuckDB file another process holds,
    a PostgreSQL server that is down): what was read from it last may stand in. Still a ProjectError,
    for callers that caught it as one before exit code 3 existed."""


class WarehouseLocked(WarehouseUnavailable):
    """Another process held the DuckDB file for longer than featurehouse waits for it."""

    def __init__(self, path: str, holder: str, waited_s: float, setting: str):
        self.path, self.holder, self.waited_s = path, holder, waited_s
        super().__init__(f"DuckDB file {path} is held by another process ({holder}); waited {waited_s:g}s for it "
                         f"(retry later, or set {setting} to wait longer)")


class InvalidFeatureMetadata(FeaturehouseError):
    """A model's `meta.featurehouse` block is wrong."""

    def __init__(self, model: str, field: str, problem: str):
        self.model, self.field, self.problem = model, field, problem
        # a column's YAML declaration is not in meta: name where the user wrote it
        where = field if field.startswith(("columns.", "vars.")) else f"meta.featurehouse.{field}"
        kind = "" if model.startswith(("exposure ", "dbt_project.yml")) else "model "
        super().__init__(f"{kind}'{model}': {where}: {problem}" if kind else f"{model}: {where}: {problem}")


class UnknownFeature(FeaturehouseError):
    """A feature, view or version that the registry does not hold."""


class UnknownEntity(FeaturehouseError):
    """An entity type that is not declared in the project's vars."""


class InvalidSpine(FeaturehouseError):
    """The spine (the rows to build features for) lacks a column or has the wrong type."""


class InvalidDuration(FeaturehouseError):
    """A duration string such as '7d' that cannot be read."""


class InvalidRequest(FeaturehouseError):
    """Malformed input a user can fix: a bad feature name or key form, too many ids (HTTP 422)."""
