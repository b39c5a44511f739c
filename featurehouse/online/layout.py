"""The online store describes itself: which columns, in which order, each stored `view@N` array holds.

Values are msgpack arrays without names, so a reader must know the order the writer used. That
order is recorded by the writer itself, in the store (`fh:layouts`), the first time it writes a
view@version; every later writer conforms to it (or fails, naming the columns, when the set of
columns differs) and every reader resolves column positions from it, never from its own registry.
Two processes whose registries list a view's columns in different orders (YAML order before a
build, relation order after) then still agree on every value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from featurehouse.errors import FeaturehouseError
from featurehouse.online.keys import value_field


class LayoutConflict(FeaturehouseError):
    """A writer's columns for view@N are not the set the store already holds for it."""


@dataclass(frozen=True)
class Layout:
    """The stored array of `view@version`: its feature columns in order, with their warehouse types."""

    view: str
    version: int
    columns: tuple[str, ...]
    types: tuple[str | None, ...] = ()

    @property
    def field(self) -> str:
        return value_field(self.view, self.version)

    def index(self, column: str) -> int | None:
        """Where `column` sits in the stored array (None: the store holds no such column)."""
        try:
            return self.columns.index(column)
        except ValueError:
            return None

    def to_json(self) -> str:
        return json.dumps({"columns": list(self.columns), "types": list(self.types)})

    @classmethod
    def from_json(cls, field: str, text: str | bytes) -> "Layout":
        view, _, version = field.rpartition("@")
        body = json.loads(text)
        return cls(view, int(version), tuple(body["columns"]), tuple(body.get("types") or ()))

    def order_from(self, columns: Sequence[str]) -> list[int] | None:
        """Positions in `columns` that give this layout's order; None when already in it.

        Raises LayoutConflict when the sets differ: the view changed without a new version."""
        if tuple(columns) == self.columns:
            return None
        if sorted(columns) != sorted(self.columns):
            raise LayoutConflict(
                f"feature view '{self.field}' is stored online with columns ({', '.join(self.columns)}) but is "
                f"now declared with ({', '.join(columns)}): a changed view needs a new version "
                f"(`featurehouse check` names it), then `featurehouse backfill` and `promote`")
        return [list(columns).index(c) for c in self.columns]


def parse_layouts(raw: Mapping[Any, Any]) -> dict[str, Layout]:
    """The `fh:layouts` hash (field `view@N` -> JSON) as Layouts by field."""
    out = {}
    for field, text in raw.items():
        name = field.decode() if isinstance(field, bytes) else field
        out[name] = Layout.from_json(name, text)
    return out
