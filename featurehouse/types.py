"""One type system: every engine's type names read as one logical type, served the same way everywhere.

Type names reach featurehouse from DuckDB (`HUGEINT`, `DECIMAL(18,3)`, `INTEGER[]`), PostgreSQL
(`double precision`, `character varying`, `timestamp without time zone`, `ARRAY`), Spark
(`string`, `array<int>`), YAML `data_type`s, posted definitions and Arrow schemas. sqlglot's
`exp.DataType` parses the SQL spellings; this module folds its types into a small `LogicalType`, and
every part of featurehouse asks it rather than keeping a table of its own:

- `same_type`: the schema gate (exact) and declared-vs-built checks (logical);
- `family`: what a reader gets (push validation, spines, skew's key casts);
- `serving_cast`: the SQL that makes a warehouse column serve-ready (point-in-time join, sync);
- `arrow_type`: the Arrow type of a feature column in a training set.

The serving rule (docs/semantics.md, "Types"): 128-bit and unbounded integers (DuckDB's HUGEINT,
UHUGEINT, BIGNUM; `SUM` of integers) are cast to BIGINT, and DECIMAL/NUMERIC to DOUBLE, in the SQL
that reads feature columns. A feature is then a Python int or float, an Arrow int64 or float64 and a
JSON number on every path, instead of Decimal objects in one place and JSON strings in another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import ParseError

DType = exp.DataType.Type


class Kind(str, Enum):
    """A logical type: spellings and engines differ, the values a feature holds do not."""

    BOOLEAN = "boolean"
    INTEGER = "integer"  # up to 64 bits, signed or not
    INT128 = "int128"  # HUGEINT, UHUGEINT and unbounded integers: served as BIGINT
    FLOAT = "float"
    DECIMAL = "decimal"  # DECIMAL/NUMERIC(p, s): served as DOUBLE
    STRING = "string"
    DATE = "date"
    TIMESTAMP = "timestamp"  # naive, UTC by featurehouse's convention
    TIMESTAMPTZ = "timestamptz"
    TIME = "time"
    INTERVAL = "interval"
    BINARY = "binary"
    LIST = "list"
    STRUCT = "struct"  # structs, maps, unions and JSON
    OTHER = "other"  # anything else (UUID, PostgreSQL's USER-DEFINED, geometry...): compared by name


class Family(str, Enum):
    """What a reader gets once the serving casts are applied: push validation, spines and skew use it."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    FLOAT = "float"
    STRING = "string"
    DATE = "date"
    TIMESTAMP = "timestamp"
    TIME = "time"
    INTERVAL = "interval"
    BINARY = "binary"
    LIST = "list"
    STRUCT = "struct"
    OTHER = "other"


_FAMILY = {Kind.INT128: Family.INTEGER, Kind.DECIMAL: Family.FLOAT, Kind.TIMESTAMPTZ: Family.TIMESTAMP}


@dataclass(frozen=True)
class LogicalType:
    """A parsed type name. `name` is the canonical spelling (width-exact, e.g. 'bigint', 'hugeint',
    'double', 'decimal(18,2)', 'varchar', 'timestamp', 'integer[]'): equal names are the same type."""

    kind: Kind
    name: str
    bits: int | None = None  # integers and floats
    signed: bool = True
    precision: int | None = None  # decimals, when the spelling states them
    scale: int | None = None
    element: LogicalType | None = None  # lists, when the element type is known

    @property
    def family(self) -> Family:
        return _FAMILY.get(self.kind) or Family(self.kind.value)

    @property
    def arrow(self) -> pa.DataType | None:
        """The Arrow type a training set holds for a feature of this type (None: no fixed type)."""
        return _arrow(self)

    def serving_type(self) -> exp.DataType | None:
        """The type a feature column is cast to before it is served or trained on (None: as it is)."""
        if self.kind is Kind.INT128:
            return exp.DataType.build("BIGINT")
        if self.kind is Kind.DECIMAL:
            return exp.DataType.build("DOUBLE")
        return None


# sqlglot type -> (kind, canonical name, bits, signed)
_TYPES: dict[DType, tuple[Kind, str, int | None, bool]] = {
    DType.BOOLEAN: (Kind.BOOLEAN, "boolean", None, True),
    DType.TINYINT: (Kind.INTEGER, "tinyint", 8, True),
    DType.SMALLINT: (Kind.INTEGER, "smallint", 16, True),
    DType.SMALLSERIAL: (Kind.INTEGER, "smallint", 16, True),
    DType.MEDIUMINT: (Kind.INTEGER, "integer", 32, True),
    DType.INT: (Kind.INTEGER, "integer", 32, True),
    DType.SERIAL: (Kind.INTEGER, "integer", 32, True),
    DType.BIGINT: (Kind.INTEGER, "bigint", 64, True),
    DType.BIGSERIAL: (Kind.INTEGER, "bigint", 64, True),
    DType.UTINYINT: (Kind.INTEGER, "utinyint", 8, False),
    DType.USMALLINT: (Kind.INTEGER, "usmallint", 16, False),
    DType.UMEDIUMINT: (Kind.INTEGER, "uinteger", 32, False),
    DType.UINT: (Kind.INTEGER, "uinteger", 32, False),
    DType.UBIGINT: (Kind.INTEGER, "ubigint", 64, False),
    DType.INT128: (Kind.INT128, "hugeint", 128, True),
    DType.UINT128: (Kind.INT128, "uhugeint", 128, False),
    DType.INT256: (Kind.INT128, "int256", 256, True),
    DType.UINT256: (Kind.INT128, "uint256", 256, False),
    DType.BIGNUM: (Kind.INT128, "bignum", None, True),
    DType.FLOAT: (Kind.FLOAT, "float", 32, True),
    DType.DOUBLE: (Kind.FLOAT, "double", 64, True),
    DType.DECIMAL: (Kind.DECIMAL, "decimal", None, True),
    DType.DECIMAL32: (Kind.DECIMAL, "decimal", None, True),
    DType.DECIMAL64: (Kind.DECIMAL, "decimal", None, True),
    DType.DECIMAL128: (Kind.DECIMAL, "decimal", None, True),
    DType.DECIMAL256: (Kind.DECIMAL, "decimal", None, True),
    DType.BIGDECIMAL: (Kind.DECIMAL, "decimal", None, True),
    DType.UDECIMAL: (Kind.DECIMAL, "decimal", None, True),
    DType.DATE: (Kind.DATE, "date", None, True),
    DType.DATE32: (Kind.DATE, "date", None, True),
    DType.TIMESTAMP: (Kind.TIMESTAMP, "timestamp", None, True),
    DType.TIMESTAMPNTZ: (Kind.TIMESTAMP, "timestamp", None, True),
    DType.DATETIME: (Kind.TIMESTAMP, "timestamp", None, True),
    DType.DATETIME2: (Kind.TIMESTAMP, "timestamp", None, True),
    DType.SMALLDATETIME: (Kind.TIMESTAMP, "timestamp", None, True),
    DType.TIMESTAMP_S: (Kind.TIMESTAMP, "timestamp_s", None, True),
    DType.TIMESTAMP_MS: (Kind.TIMESTAMP, "timestamp_ms", None, True),
    DType.TIMESTAMP_NS: (Kind.TIMESTAMP, "timestamp_ns", None, True),
    DType.DATETIME64: (Kind.TIMESTAMP, "timestamp_ns", None, True),
    DType.TIMESTAMPTZ: (Kind.TIMESTAMPTZ, "timestamptz", None, True),
    DType.TIMESTAMPLTZ: (Kind.TIMESTAMPTZ, "timestamptz", None, True),
    DType.TIME: (Kind.TIME, "time", None, True),
    DType.TIME_NS: (Kind.TIME, "time", None, True),
    DType.TIMETZ: (Kind.TIME, "timetz", None, True),
    DType.INTERVAL: (Kind.INTERVAL, "interval", None, True),
    DType.BINARY: (Kind.BINARY, "blob", None, True),
    DType.VARBINARY: (Kind.BINARY, "blob", None, True),
    DType.BLOB: (Kind.BINARY, "blob", None, True),
    DType.TINYBLOB: (Kind.BINARY, "blob", None, True),
    DType.MEDIUMBLOB: (Kind.BINARY, "blob", None, True),
    DType.LONGBLOB: (Kind.BINARY, "blob", None, True),
    DType.JSON: (Kind.STRUCT, "json", None, True),
    DType.JSONB: (Kind.STRUCT, "json", None, True),
}
_STRINGS = {DType.TEXT, DType.VARCHAR, DType.CHAR, DType.NCHAR, DType.NVARCHAR, DType.BPCHAR, DType.NAME,
            DType.TINYTEXT, DType.MEDIUMTEXT, DType.LONGTEXT, DType.FIXEDSTRING, DType.ENUM, DType.ENUM8,
            DType.ENUM16}
_NESTED = {DType.STRUCT, DType.MAP, DType.UNION, DType.OBJECT, DType.VARIANT, DType.NESTED, DType.SUPER}

# Spellings no sqlglot dialect reads (pandas/Arrow names, DuckDB's old name for BIGNUM).
_SPELLINGS = {"float64": "double", "float32": "real", "uint8": "utinyint", "uint16": "usmallint",
              "uint32": "uinteger", "uint64": "ubigint", "varint": "bignum", "datetime64": "timestamp_ns"}
# Without a dialect, DuckDB's reader goes first: it also reads PostgreSQL's spellings (int8 = bigint).
_DEFAULT_DIALECTS = ("duckdb", "postgres", "spark")


@lru_cache(maxsize=4096)
def logical(type_text: str | None, dialect: str | None = None) -> LogicalType:
    """The logical type of an engine's type name; unreadable names become Kind.OTHER under their own name."""
    text = " ".join((type_text or "").strip().lower().split())
    if not text:
        return LogicalType(Kind.OTHER, "")
    spelled = _SPELLINGS.get(text, text)
    for d in ([dialect] if dialect else []) + [d for d in _DEFAULT_DIALECTS if d != dialect]:
        try:
            parsed = exp.DataType.build(spelled, dialect=d)
        except (ParseError, ValueError):
            continue
        return _from_datatype(parsed, explicit_params="(" in spelled)
    return LogicalType(Kind.OTHER, text)


def _from_datatype(dt: exp.DataType, explicit_params: bool = True) -> LogicalType:
    t = dt.this
    if t in _TYPES:
        kind, name, bits, signed = _TYPES[t]
        if kind is Kind.DECIMAL:
            params = [_int(p) for p in dt.expressions or []]
            if explicit_params and len(params) >= 1 and params[0] is not None:
                scale = params[1] if len(params) > 1 else 0
                return LogicalType(kind, f"decimal({params[0]},{scale})", precision=params[0], scale=scale)
        return LogicalType(kind, name, bits, signed)
    if t in _STRINGS:
        return LogicalType(Kind.STRING, "varchar")
    if t in (DType.ARRAY, DType.LIST):
        inner = (dt.expressions or [None])[0]
        element = _from_datatype(inner) if isinstance(inner, exp.DataType) else None
        return LogicalType(Kind.LIST, f"{element.name}[]" if element else "list", element=element)
    if t in _NESTED:  # field names compared unquoted: DuckDB quotes keywords (`STRUCT("name" VARCHAR)`)
        plain = dt.copy()
        for ident in plain.find_all(exp.Identifier):
            ident.set("quoted", False)
        return LogicalType(Kind.STRUCT, plain.sql("duckdb").lower())
    return LogicalType(Kind.OTHER, dt.sql("duckdb").lower())


def _int(param: exp.Expr) -> int | None:
    try:
        return int(param.name if isinstance(param, exp.DataTypeParam) else param.sql())
    except (TypeError, ValueError):
        return None


def canonical(type_text: str | None, dialect: str | None = None) -> str:
    """The canonical spelling: 'int8', 'BIGINT' and 'long' are all 'bigint'."""
    return logical(type_text, dialect).name


def family(type_text: str | None, dialect: str | None = None) -> Family:
    return logical(type_text, dialect).family


def is_timestamp(type_text: str | None, dialect: str | None = None) -> bool:
    """A point in time (an event_time or created_at column): timestamps with or without a zone, not dates."""
    return logical(type_text, dialect).kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ)


def same_type(a: str | None, b: str | None, dialect: str | None = None, exact: bool = False) -> bool:
    """Whether two type names are one type.

    `exact` (the schema gate: a published version keeps its Arrow types): the canonical names are equal,
    so integer widths and decimal precision matter. Otherwise (a declared `data_type` against the built
    relation): the logical types are equal; integers up to 64 bits are one type, floats are one type,
    decimals agree when both state precision and scale, lists when both know their element type.
    """
    la, lb = logical(a, dialect), logical(b, dialect)
    return la.name == lb.name if exact else _logically_equal(la, lb)


def _logically_equal(a: LogicalType, b: LogicalType) -> bool:
    if a.kind is not b.kind:
        return False
    if a.kind is Kind.DECIMAL and a.precision is not None and b.precision is not None:
        return (a.precision, a.scale) == (b.precision, b.scale)
    if a.kind is Kind.LIST and a.element is not None and b.element is not None:
        return _logically_equal(a.element, b.element)
    if a.kind in (Kind.STRUCT, Kind.OTHER):
        return a.name == b.name
    return True


def arrow_type(type_text: str | None, dialect: str | None = None) -> pa.DataType | None:
    return logical(type_text, dialect).arrow


_ARROW_INTEGERS = {(8, True): pa.int8(), (16, True): pa.int16(), (32, True): pa.int32(), (64, True): pa.int64(),
                   (8, False): pa.uint8(), (16, False): pa.uint16(), (32, False): pa.uint32(), (64, False): pa.uint64()}


def _arrow(t: LogicalType) -> pa.DataType | None:
    k = t.kind
    if k is Kind.BOOLEAN:
        return pa.bool_()
    if k is Kind.INTEGER:
        return _ARROW_INTEGERS[(t.bits or 64, t.signed)]
    if k is Kind.INT128:
        return pa.int64()
    if k is Kind.FLOAT:
        return pa.float32() if t.bits == 32 else pa.float64()
    if k is Kind.DECIMAL:
        return pa.float64()
    if k is Kind.STRING:
        return pa.string()
    if k is Kind.DATE:
        return pa.date32()
    if k is Kind.TIMESTAMP:
        return pa.timestamp({"timestamp_s": "s", "timestamp_ms": "ms", "timestamp_ns": "ns"}.get(t.name, "us"))
    if k is Kind.TIMESTAMPTZ:
        return pa.timestamp("us", tz="UTC")
    if k is Kind.TIME:
        return pa.time64("us")
    if k is Kind.INTERVAL:
        return pa.month_day_nano_interval()
    if k is Kind.BINARY:
        return pa.binary()
    if k is Kind.LIST and t.element is not None:
        inner = _arrow(t.element)
        return pa.list_(inner) if inner is not None else None
    return None


def serving_cast(column_expr: exp.Expr, data_type: str | None, dialect: str | None = None) -> exp.Expr:
    """`column_expr` cast to its serving type (HUGEINT -> BIGINT, DECIMAL -> DOUBLE), or unchanged.

    Both SQL builders that read feature columns use it (the point-in-time join and the latest values
    per entity), so a training set, the online store and HTTP all hold the same Python type. A HUGEINT
    value outside BIGINT's range fails in the warehouse, with its own conversion error."""
    target = logical(data_type, dialect).serving_type()
    return exp.Cast(this=column_expr, to=target) if target is not None else column_expr


# -- other sources of types: Arrow schemas and PostgreSQL's result OIDs --------------------------

def from_arrow(t: pa.DataType) -> LogicalType:
    """The logical type of an Arrow type (spines and other tables loaded from Python)."""
    if pa.types.is_boolean(t):
        return LogicalType(Kind.BOOLEAN, "boolean")
    if pa.types.is_integer(t):
        signed = pa.types.is_signed_integer(t)
        names = {8: "tinyint", 16: "smallint", 32: "integer", 64: "bigint"}
        return LogicalType(Kind.INTEGER, ("" if signed else "u") + names[t.bit_width], t.bit_width, signed)
    if pa.types.is_floating(t):
        return LogicalType(Kind.FLOAT, "double" if t.bit_width == 64 else "float", t.bit_width)
    if pa.types.is_decimal(t):
        return LogicalType(Kind.DECIMAL, f"decimal({t.precision},{t.scale})", precision=t.precision, scale=t.scale)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return LogicalType(Kind.STRING, "varchar")
    if pa.types.is_timestamp(t):
        return LogicalType(Kind.TIMESTAMPTZ, "timestamptz") if t.tz else LogicalType(Kind.TIMESTAMP, "timestamp")
    if pa.types.is_date(t):
        return LogicalType(Kind.DATE, "date")
    if pa.types.is_time(t):
        return LogicalType(Kind.TIME, "time")
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return LogicalType(Kind.INTERVAL, "interval")
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return LogicalType(Kind.BINARY, "blob")
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        element = from_arrow(t.value_type)
        return LogicalType(Kind.LIST, f"{element.name}[]", element=element)
    if pa.types.is_struct(t) or pa.types.is_map(t) or pa.types.is_union(t):
        return LogicalType(Kind.STRUCT, str(t))
    return LogicalType(Kind.OTHER, str(t))


def declared_type(t: pa.DataType) -> str:
    """The SQL type, as a model's YAML declares it, of a column that holds an Arrow column as it is
    (nested types spelled out: `struct("name" varchar)`, `map(varchar, bigint)`, `double[]`)."""
    if pa.types.is_struct(t):
        fields = ", ".join(f"{_field_name(t.field(i).name)} {declared_type(t.field(i).type)}" for i in range(t.num_fields))
        return f"struct({fields})"
    if pa.types.is_map(t):
        return f"map({declared_type(t.key_type)}, {declared_type(t.item_type)})"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"{declared_type(t.value_type)}[]"
    return from_arrow(t).name


def _field_name(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def column_type_for(t: pa.DataType, dialect: str) -> str:
    """The warehouse column type that holds an Arrow column loaded as CSV (PostgreSQL's COPY path):
    integers widen to BIGINT, floats to DOUBLE, decimals keep their digits, the rest is text."""
    lt = from_arrow(t)
    name = {Kind.BOOLEAN: "BOOLEAN", Kind.INTEGER: "BIGINT", Kind.FLOAT: "DOUBLE", Kind.DECIMAL: "DECIMAL",
            Kind.DATE: "DATE", Kind.TIMESTAMP: "TIMESTAMP", Kind.TIMESTAMPTZ: "TIMESTAMPTZ"}.get(lt.kind, "TEXT")
    return exp.DataType.build(name).sql(dialect).lower()


# PostgreSQL's built-in type OIDs (pg_type.oid, stable across versions) for a result's columns.
PG_TYPE_NAMES = {
    16: "boolean", 17: "bytea", 18: "char", 19: "name", 20: "bigint", 21: "smallint", 23: "integer", 25: "text",
    114: "json", 700: "real", 701: "double precision", 1042: "bpchar", 1043: "varchar", 1082: "date",
    1083: "time", 1114: "timestamp", 1184: "timestamptz", 1186: "interval", 1266: "timetz", 1700: "numeric",
    2950: "uuid", 3802: "jsonb", 1000: "boolean[]", 1005: "smallint[]", 1007: "integer[]", 1009: "text[]",
    1015: "varchar[]", 1016: "bigint[]", 1021: "real[]", 1022: "double precision[]", 1231: "numeric[]",
}


def pg_type_name(oid: int) -> str | None:
    return PG_TYPE_NAMES.get(oid)


_INTEGER_TEXT = re.compile(r"\s*([+-]?)0*([0-9]+)\s*")


def canonical_integer(text: str) -> str | None:
    """An integer written as text, spelled the one way the warehouse and the online store's keys spell
    it (`+007` -> `7`, `-0` -> `0`); None when the text is not an integer. By hand: int() refuses
    strings of over 4,300 digits."""
    found = _INTEGER_TEXT.fullmatch(text)
    if found is None:
        return None
    sign, digits = found.groups()
    return digits if digits == "0" or sign != "-" else f"-{digits}"
