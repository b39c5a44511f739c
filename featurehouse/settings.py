"""An opt-in setting made of a few numbers (serve's `near_cache`, `replica_reads`): absent or false is
off, true is on with the defaults, a mapping (or, from an environment variable, JSON text) sets some of
them. One reading for every such setting, so each says what is wrong with it the same way."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

T = TypeVar("T")

_OFF = ("", "false", "off", "no", "0")
_ON = ("true", "on", "yes", "1")


def dataclass_setting(name: str, value: Any, config: type[T], error: type[Exception], example: str) -> T | None:
    """`value` read as `config` (a frozen dataclass of int and float fields that checks itself in
    __post_init__ with ValueError), or None for off; anything else raises `error` naming the setting."""
    fields = [f for f in dataclasses.fields(config)]  # type: ignore[arg-type]
    listed = ", ".join(f.name for f in fields)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _OFF:
            return None
        if text in _ON:
            return config()
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise error(f"{name} {value!r}: give true, false, or a JSON mapping of {listed} (e.g. {example})") from None
    if value is None or value is False:
        return None
    if value is True:
        return config()
    if not isinstance(value, dict):
        raise error(f"{name} {value!r}: give true, false, or a mapping of {listed}")
    unknown = sorted(set(value) - {f.name for f in fields})
    if unknown:
        raise error(f"{name}: unknown setting '{unknown[0]}' (known: {', '.join(sorted(f.name for f in fields))})")
    given: dict[str, Any] = {}
    for f in fields:
        if f.name not in value:
            continue
        v = value[f.name]
        if f.type in ("int", int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            given[f.name] = v  # a whole number or not: the dataclass says
            continue
        try:
            if isinstance(v, bool):
                raise TypeError
            given[f.name] = float(v)
        except (TypeError, ValueError):
            raise error(f"{name}: {f.name} must be a number, got {v!r}") from None
    try:
        return config(**given)
    except ValueError as e:
        raise error(f"{name}: {e}") from None
