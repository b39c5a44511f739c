"""Pushed rows: validated against the view's schema before they enter the durable stream.

A pushed row is a mapping with the view's entity key columns, its event_time column and every one of
its feature columns (JSON null for a NULL value). A row that leaves a feature out is rejected naming
the features it lacks (`MissingFeatures`): a forgotten field would otherwise overwrite the entity's
value online with NULL, served as `ok`. A view whose rows may leave features out declares
`meta.featurehouse.partial_push: true`: a feature left out is then stored as NULL, as an explicit null
is (online and in the landing table: a row is the entity's whole state as of its event time, so an
earlier value of that feature is not kept). A row's created_at is the time featurehouse received it,
never the client's: ingestion time is what incremental syncs and "as known at" reads rely on. An event time
further ahead of the clock than `max_clock_skew` (default 5 minutes) is rejected: the write guard
keeps the newest event, so one row from the far future would outrank every real one for good.
Anything else, or a value of the wrong type, is rejected naming the field.

A value is accepted only if every store can hold it as the view declares it: the stream consumer
writes it to a warehouse table of the view's types, and a row one store refuses would stop the
stream for good. So integers must fit their column's width, strings may not hold a NUL byte (which
PostgreSQL refuses), and list elements are checked like columns.

Entity keys are coerced to their column's type (`FeatureView.key_types`): an integer key takes
integers and strings of an integer in canonical form ("42", not "042", "+42" or " 42": those would be
entities of their own wherever the key is text, such as the online store's keys); a string key takes
strings and integers (42 becomes "42"). A key column of unknown type takes a string or an integer as
it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from featurehouse.errors import FeaturehouseError
from featurehouse.registry.model import FeatureView
from featurehouse.types import Family, Kind, LogicalType, canonical_integer, logical


class InvalidRow(FeaturehouseError):
    """A pushed row that does not fit the view; `field` names the culprit."""

    def __init__(self, view: str, field: str, problem: str):
        self.view, self.field, self.problem = view, field, problem
        super().__init__(f"view '{view}': field '{field}': {problem}")


class MissingFeatures(InvalidRow):
    """A pushed row that leaves out features of a view that does not take partial rows; `missing` names
    them all (`field` is the first)."""

    def __init__(self, view: str, missing: Sequence[str]):
        self.missing = tuple(missing)
        super().__init__(view, self.missing[0],
                         f"row lacks feature(s) {', '.join(self.missing)}: send every feature of the view (null for a "
                         "NULL value), or declare meta.featurehouse.partial_push: true on the view to store features "
                         "left out as NULL")


@dataclass(frozen=True)
class ValidRow:
    key: tuple
    event_time: datetime
    created_at: datetime
    values: tuple


# What pyarrow's nanosecond timestamps hold (a TIMESTAMP_NS column): about 1677-09-21 to 2262-04-11.
_NS_MIN, _NS_MAX = datetime(1677, 9, 22), datetime(2262, 4, 11)


def _timestamp(view: str, field: str, value: Any) -> datetime:
    try:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
        if isinstance(value, str):
            try:
                return _timestamp(view, field, datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return datetime.fromtimestamp(value, timezone.utc).replace(tzinfo=None)  # epoch seconds
    except (OverflowError, OSError, ValueError):  # a year outside 1..9999 once in UTC, an epoch of 1e20
        raise InvalidRow(view, field, f"{_shown(value)} is outside the timestamps featurehouse can hold "
                                      "(years 1 to 9999, UTC)") from None
    raise InvalidRow(view, field, f"expected a timestamp (ISO 8601 or epoch seconds), got {_shown(value)}")


MAX_CLOCK_SKEW = timedelta(minutes=5)


def _integer_range(declared: LogicalType) -> tuple[range, str]:
    """The integers a column holds everywhere: its own width, within BIGINT's range (what the online
    store and every warehouse hold; HUGEINT is served as BIGINT)."""
    bits = declared.bits if declared.kind is Kind.INTEGER and declared.bits else 64
    if not declared.signed and declared.kind is Kind.INTEGER:
        return range(0, min(2**bits, 2**63)), f"{bits}-bit unsigned"
    bits = min(bits, 64)
    return range(-(2 ** (bits - 1)), 2 ** (bits - 1)), f"{bits}-bit"


def _number(value: int) -> str:
    """An integer as a message shows it: a huge one by its size (str() of 4,300+ digits even raises)."""
    return str(value) if -(10**30) < value < 10**30 else f"an integer of {value.bit_length()} bits"


def _shown(value: Any) -> str:
    """A value as a message shows it: short, and never failing (a 5,000-digit int has no str())."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _number(value)
    try:
        text = repr(value)
    except ValueError:
        return f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _integer(view: str, field: str, data_type: str | None, declared: LogicalType, value: int) -> int:
    allowed, spelled = _integer_range(declared)
    if value not in allowed:
        raise InvalidRow(view, field, f"{_number(value)} is outside the {spelled} range of {data_type}")
    return value


def _storable(view: str, field: str, value: Any) -> None:
    """What no declared type checked (nested values, untyped columns) must still be storable: PostgreSQL refuses
    NUL in text (and engines that take it differ on what comes back), and the online store holds integers of at
    most 64 bits (a larger one failed the push with a TypeError instead of naming the field)."""
    if isinstance(value, str) and "\x00" in value:
        raise InvalidRow(view, field, "contains a NUL byte (\\u0000), which the warehouse cannot store in text")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        raise InvalidRow(view, field, f"{_number(value)} is outside the 64-bit range the online store holds")
    if isinstance(value, (list, tuple)):
        for item in value:
            _storable(view, field, item)
    elif isinstance(value, Mapping):
        for k, item in value.items():
            _storable(view, field, k)
            _storable(view, field, item)


def _list(view: str, field: str, declared: LogicalType, value: Any) -> list:
    """Each element is checked as a column of the element type would be (when the type names it)."""
    if not isinstance(value, list):
        raise InvalidRow(view, field, f"expected {declared.name}, got {type(value).__name__} {_shown(value)}")
    if declared.element is None:
        _storable(view, field, value)
        return value
    return [coerce(view, f"{field}[{i}]", declared.element.name, v) for i, v in enumerate(value)]


def coerce(view: str, field: str, data_type: str | None, value: Any) -> Any:
    """Check a value against a declared type (featurehouse.types); JSON's numbers and strings are
    converted where exact. A value is held as it would be served: a DECIMAL column takes numbers as
    floats, a HUGEINT column integers in BIGINT's range (docs/semantics.md, "Types")."""
    if value is None:
        return None
    declared = logical(data_type)
    family = declared.family
    ok = True
    if family is Family.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok:
            return _integer(view, field, data_type, declared, value)
    elif family is Family.FLOAT:
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise InvalidRow(view, field, f"{_number(value)} is too large for {data_type}") from None
        ok = isinstance(value, float)
    elif family is Family.BOOLEAN:
        ok = isinstance(value, bool)
    elif family is Family.STRING:
        ok = isinstance(value, str)
    elif family is Family.TIMESTAMP:
        return _timestamp_of(view, field, declared, value)
    elif family is Family.DATE:
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                ok = False
        ok = ok and isinstance(value, date)
    elif family is Family.LIST:
        return _list(view, field, declared, value)
    if not ok:
        raise InvalidRow(view, field, f"expected {data_type}, got {type(value).__name__} {_shown(value)}")
    _storable(view, field, value)
    return value


def _timestamp_of(view: str, field: str, declared: LogicalType, value: Any) -> datetime:
    at = _timestamp(view, field, value)
    if declared.name == "timestamp_ns" and not _NS_MIN <= at <= _NS_MAX:
        raise InvalidRow(view, field, f"{at.isoformat()} is outside what a nanosecond timestamp holds "
                                      "(years 1678 to 2261)")
    return at


def key_types(view: FeatureView) -> tuple[str | None, ...]:
    """The view's key column types in `entity.keys` order, None where unknown (hand-built views)."""
    declared = view.key_types
    return tuple(declared[i] if i < len(declared) else None for i in range(len(view.entity.keys)))


def coerce_key(view: str, field: str, data_type: str | None, value: Any) -> str | int:
    """An entity key value as its column holds it (see the module docstring)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRow(view, field, f"entity key column is required (a string or an integer), got {_shown(value)}")
    declared = logical(data_type) if data_type else None
    family = declared.family if declared else None
    if family is Family.INTEGER and isinstance(value, str):
        if canonical_integer(value) != value:
            raise InvalidRow(view, field, f"{_shown(value)} is not an integer written plainly (digits, an optional '-', "
                                          f"no leading zeros or spaces), as the {data_type} key needs: '042' "
                                          "and 42 would be two different entities")
        if len(value) > 20:  # past any 64-bit integer, and int() of 4,300+ digits raises
            raise InvalidRow(view, field, f"an integer of {len(value)} digits is outside the range of {data_type}")
        value = int(value)
    elif family is Family.STRING and isinstance(value, int):
        if not -(10**30) < value < 10**30:  # str() of 4,300+ digits even raises
            raise InvalidRow(view, field, f"{_number(value)} is too long for a {data_type} key")
        value = str(value)
    if isinstance(value, int):
        return _integer(view, field, data_type or "an integer key", declared or logical("bigint"), value)
    _storable(view, field, value)
    return value


def validate(view: FeatureView, row: Mapping[str, Any], now: datetime | None = None,
             max_clock_skew: timedelta = MAX_CLOCK_SKEW) -> ValidRow:
    """The row as the stream holds it, or InvalidRow naming the field (MissingFeatures, naming every
    feature left out, for a row that lacks features of a view without `partial_push`)."""
    if not isinstance(row, Mapping):
        raise InvalidRow(view.name, "<row>", "a row must be an object of column: value")
    if view.created_at and view.created_at in row:
        raise InvalidRow(view.name, view.created_at, "is set by featurehouse when the row arrives (its ingestion "
                                                     "time); leave it out")
    known = set(view.entity.keys) | {view.event_time} | set(view.feature_columns)
    unknown = sorted(set(row) - known)
    if unknown:
        raise InvalidRow(view.name, unknown[0], f"not a column of the view (columns: {', '.join(sorted(known))})")
    key = tuple(coerce_key(view.name, k, t, row.get(k)) for k, t in zip(view.entity.keys, key_types(view)))
    if row.get(view.event_time) is None:
        raise InvalidRow(view.name, view.event_time, "event time is required")
    event_time = _timestamp(view.name, view.event_time, row[view.event_time])
    created_at = now or datetime.now(timezone.utc).replace(tzinfo=None)
    if event_time > created_at + max_clock_skew:
        raise InvalidRow(view.name, view.event_time, f"{event_time.isoformat()} is ahead of the server's clock "
                                                     f"({created_at.isoformat(timespec='seconds')} UTC) by more than "
                                                     f"the allowed clock skew ({max_clock_skew})")
    if not view.partial_push:
        missing = [c for c in view.feature_columns if c not in row]
        if missing:
            raise MissingFeatures(view.name, missing)
    values = tuple(coerce(view.name, f.column, f.data_type, row.get(f.column)) for f in view.features)
    return ValidRow(key, event_time, created_at, values)


def recheck(view: FeatureView, types: tuple[str | None, ...], key: tuple, values: tuple) -> tuple[tuple, tuple]:
    """An entry read back from the stream, checked again (the consumer's side): entries pushed by an
    older featurehouse, or written to the stream directly, meet the same rules as a push."""
    if len(key) != len(view.entity.keys) or len(values) != len(view.features):
        raise InvalidRow(view.name, "<entry>", f"holds {len(key)} key and {len(values)} feature values, the view "
                                               f"has {len(view.entity.keys)} and {len(view.features)}")
    key = tuple(coerce_key(view.name, k, t, v) for k, t, v in zip(view.entity.keys, types, key))
    values = tuple(coerce(view.name, f.column, f.data_type, v) for f, v in zip(view.features, values))
    return key, values


# -- forgotten entities ------------------------------------------------------------------------
#
# `featurehouse forget` leaves a tombstone for the entity (featurehouse/sync/forget.py): a row of the
# warehouse table featurehouse_tombstones, mirrored in the online store's hash TOMBSTONES, whose
# fields are the key texts below. The stream consumer and sync check rows against it, so a push still
# in flight, or a view still holding the entity, does not bring it back.

_TEXT_ESCAPES = {"%": "%25", ";": "%3B", "=": "%3D"}


def _escape_text(text: str) -> str:
    for raw, escaped in _TEXT_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def tombstone_text(columns: Sequence[str], values: Sequence[Any]) -> str:
    """An entity key as a tombstone holds it: `col=value` pairs ordered by column and joined by `;`,
    each value as text (42 and "42" alike, as in the online store's keys), `%`, `;` and `=` percent-
    encoded. It names no entity type: a user_item row (42, 7) is checked against `user_id=42` too."""
    pairs = sorted(zip(columns, values), key=lambda pair: pair[0])
    return ";".join(f"{_escape_text(c)}={_escape_text(str(v))}" for c, v in pairs)


def parse_tombstone_text(text: str) -> dict[str, str]:
    """`tombstone_text`'s column -> value, read back."""
    from urllib.parse import unquote

    pairs = (piece.partition("=") for piece in text.split(";") if piece)
    return {unquote(c): unquote(v) for c, _, v in pairs}


def key_texts(columns: Sequence[str], key: Sequence[Any]) -> list[str]:
    """The tombstone texts a row of an entity with these key columns is forgotten under: its own key's,
    and each of its key's parts (an entity keyed by a forgotten one: user_item (42, 7) by user 42)."""
    n = len(columns)
    return [tombstone_text([columns[i] for i in range(n) if mask >> i & 1], [key[i] for i in range(n) if mask >> i & 1])
            for mask in range(1, 2 ** n)]


def forgotten(client: Any, columns: Sequence[str], keys: Sequence[Sequence[Any]]) -> list[bool]:
    """Which of these keys (of an entity with these key columns) are tombstoned, or keyed by a
    tombstoned entity: one HMGET of the online store's mirror."""
    from featurehouse.online.keys import TOMBSTONES

    if not keys:
        return []
    texts = [key_texts(columns, key) for key in keys]
    fields = sorted({t for row in texts for t in row})
    found = {f for f, v in zip(fields, client.hmget(TOMBSTONES, fields)) if v is not None}
    return [any(t in found for t in row) for row in texts]
