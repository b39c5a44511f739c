"""The Redis key layout (docs/online-store.md).

One hash per entity holds every view's values for it, so one HMGET fetches a whole vector across
views. The entity part of the key is a Redis Cluster hash tag, so an entity's hash lives in one slot:

    fh:{<entity_type>:<key>}          e.g. fh:{user:42}, fh:{card_merchant:7|m%7C1}
      <view>@<version>                msgpack array of the view's feature values
      _t:<view>@<version>             "<event_time_us>:<created_at_us>" - what the write guard compares
"""

from __future__ import annotations

from typing import Any, Sequence

PREFIX = "fh"
# hash: <view>@<N>:stream_lag_s, :stream_checked_at, :streamed_at (stream consumer), :synced_at (batch sync), epoch seconds
MATERIALIZER = "fh:materializer"
# Sync marks (:synced_at) are compared with the warehouse's sync log and with earlier marks to tell a
# store that went back in time; they are kept to the microsecond, older ones to the millisecond.
MARK_TOLERANCE_S = 0.002


def mark_behind(marked: float | None, reference: float) -> bool:
    """Whether a sync mark (epoch seconds, None: never marked) is older than `reference`: the store
    went back in time (restored, a lagging replica promoted, writes lost)."""
    return marked is None or marked + MARK_TOLERANCE_S < reference
MODEL_VERSIONS = "fh:model_versions"  # name@version -> {"features": [view.column@N, ...], "training_set": id}
# name@version -> when it was registered and a summary of its training set (guard/lineage.py): the web catalog's
# model page (not re-read by serving every second, as MODEL_VERSIONS is)
MODEL_RECORDS = "fh:model_records"
DEPLOY_CHECKS = "fh:deploy_checks"  # name@version -> the last deploy check: {"ok", "checked_at", "failures"}
ACTIVE_VERSIONS = "fh:active_versions"  # view -> the version serving reads, derived from the warehouse's log
STORE_ID = "fh:store_id"  # this online store's identity: the sync run log is kept per online store
TOMBSTONES = "fh:tombstones"  # forgotten entities, `col=value;...` -> JSON (sync/forget.py); the warehouse holds all
TOKENS = "fh:tokens"  # token id -> its salted hash, principal, scopes, expiry (access/tokens.py); the warehouse holds all
AUDIT_STREAM = "fh:audit"  # audit events from serving (access/audit.py), landed in featurehouse_audit
AUDIT_KEY = "fh:audit_key"  # the key that pseudonymises entity ids in audit events
# view@N -> JSON list of [at, lag before, lag after] (epoch s, s): what the materializers' lag was, a point per
# sync and one a minute of the stream consumer (the catalog's sparkline; history.py)
LAG_HISTORY = "fh:lag_history"
# "parity:<view>@<N>" -> the last parity check of view@N (featurehouse parity, deploy-check): the catalog's health
GUARD_RESULTS = "fh:guard_results"
LAYOUTS = "fh:layouts"  # view@N -> {"columns": [...], "types": [...]}: the order of its stored arrays (layout.py)
_ESCAPES = {"%": "%25", "|": "%7C", "{": "%7B", "}": "%7D"}


def encode_key_part(value: Any) -> str:
    """Ints and strings alike become text, so "42" from a URL and 42 from the warehouse meet."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"entity key value {value!r} is not usable as a key")
    text = str(value)
    for raw, escaped in _ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def entity_key(entity_type: str, key: Sequence[Any]) -> str:
    return f"{PREFIX}:{{{entity_type}:{'|'.join(encode_key_part(v) for v in key)}}}"


def entity_keys(entity_type: str, columns: Sequence[Any]) -> list[str]:
    """`entity_key` of every row of the key columns (Arrow arrays), made by Arrow where each column is of
    integers or strings (a sync's keys at a twentieth of the cost); other types, and a null (refused by
    `encode_key_part`), go row by row through `entity_key`. Equal by test on generated keys."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = []
    for column in columns:
        kind = column.type
        if column.null_count or not (pa.types.is_integer(kind) or pa.types.is_string(kind)
                                     or pa.types.is_large_string(kind)):
            rows = zip(*(c.to_pylist() for c in columns))
            return [entity_key(entity_type, key) for key in rows]
        text = pc.cast(column, pa.string())
        if not pa.types.is_integer(kind):
            for raw, escaped in _ESCAPES.items():  # "%" first, as in encode_key_part
                text = pc.call_function("replace_substring", [text], pc.ReplaceSubstringOptions(raw, escaped))
        texts.append(text)
    # joined in Python from the texts: Arrow's join takes its prefix as a scalar, and pyarrow imports
    # pandas at the first scalar made from a str (0.2 s and 40 MB in a sync)
    prefix = f"{PREFIX}:{{{entity_type}:"
    if len(texts) == 1:
        return [f"{prefix}{t}}}" for t in texts[0].to_pylist()]
    return [f"{prefix}{'|'.join(parts)}}}" for parts in zip(*(t.to_pylist() for t in texts))]


def value_field(view: str, version: int) -> str:
    return f"{view}@{version}"


def time_field(view: str, version: int) -> str:
    return f"_t:{view}@{version}"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def entity_key_pattern(entity_type: str, parts: Sequence[Any | None]) -> str:
    """A SCAN glob for an entity type's keys with some key parts fixed (None = any value)."""
    body = "|".join("*" if p is None else _glob_escape(encode_key_part(p)) for p in parts)
    return f"{PREFIX}:{{{_glob_escape(entity_type)}:{body}}}"
