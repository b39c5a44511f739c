"""Exception classes. Each names the thing the user got wrong, in one line."""


class FeaturehouseError(Exception):
    """Base class: a problem the user can fix. The CLI prints it as one line and exits 2."""


class ProjectError(FeaturehouseError):
    """The dbt project cannot be found, parsed or connected to."""


class WarehouseUnavailable(ProjectError):
    """The warehouse is configured right but cannot be reached now (a DuckDB file another process holds,
    a PostgreSQL server that is down): what was read from it last may stand in."""


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
