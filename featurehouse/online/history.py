"""What the guards and materializers observed, kept in the online store for the web catalog: each view's
lag over time (a point per sync, one a minute of the stream consumer), each view's last parity check, and
every gate of each model version's last deploy check. Counts, feature names and aggregates only: never a
value of an entity, nor an entity id.

They live beside the materializer marks rather than in the warehouse because a serving worker, which
renders the live catalog, never opens the warehouse; they are observations, not records: the sync run
log and `featurehouse parity` stay the truth, and losing this hash loses only the pictures' past.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, NamedTuple

from featurehouse.online.keys import GUARD_RESULTS, LAG_HISTORY

KEEP_SAMPLES = 240  # a point per 15-minute sync: 2.5 days; per stream minute: 4 hours
STREAM_SAMPLE_EVERY_S = 60.0
MAX_GATES = 500
# where a guard's words turn to one entity's values (a parity example: "...; e.g. risk.score of entity 5:
# online -1.0, warehouse 5.0"): what is kept for the catalog, whose readers may not see them, ends before it
VALUE_EXAMPLE = "; e.g. "


def without_values(text: str) -> str:
    """A guard's words without the example of one entity's values that may follow them."""
    return text.split(VALUE_EXAMPLE)[0]


class LagSample(NamedTuple):  # a tuple: a health page parses tens of thousands of them
    at: float  # epoch seconds
    before: float | None  # the lag just before the materializer caught up (None: unknown, a first sync)
    after: float  # the lag just after


class LagHistory(Mapping[str, list[LagSample]]):
    """`fh:lag_history` as HGETALL returns it, each view's points parsed when first asked for (a view's
    page needs one view's; the health page, every view's)."""

    def __init__(self, raw: Mapping):
        self._raw = {_text(k): v for k, v in raw.items()}
        self._parsed: dict[str, list[LagSample]] = {}

    def __getitem__(self, view: str) -> list[LagSample]:
        if view not in self._parsed:
            self._parsed[view] = _samples(self._raw[view])
        return self._parsed[view]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


@dataclass(frozen=True)
class ParityResult:
    """`featurehouse parity`'s counts for one view@version, as its last check found them."""

    view: str  # view@N
    checked_at: float
    compared: int
    mismatched: int
    missing_online: int = 0
    pending: int = 0
    example: str = ""  # the features that differ most, with counts (never a value or an entity id)

    @property
    def ok(self) -> bool:
        return self.mismatched == 0

    @property
    def rate(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0

    @property
    def summary(self) -> str:
        if not self.compared:
            return f"no entity compared ({self.pending:,} pending the next sync)"
        text = f"{self.mismatched:,} of {self.compared:,} entities differ ({self.rate:.2%})"
        return text + (f": {self.example}" if self.example else "")


def record_lag_sample(client: Any, versioned: str, at: float, before: float | None, after: float) -> None:
    """Append one point to view@N's lag history, keeping the newest KEEP_SAMPLES (atomic: fh_sample)."""
    point = [round(at, 3), None if before is None else round(max(0.0, before), 3), round(max(0.0, after), 3)]
    client.fcall("fh_sample", 1, LAG_HISTORY, versioned, json.dumps(point), str(KEEP_SAMPLES))


def record_deploy_gates(client: Any, ref: str, checked_at: float, gates: list[tuple[str, str, str, str]]) -> None:
    """Every gate of MODEL@VERSION's last deploy check (gate, subject, status, detail without values), apart
    from its verdict in fh:deploy_checks, which serving re-reads every second."""
    client.hset(GUARD_RESULTS, f"deploy:{ref}", json.dumps({
        "checked_at": checked_at,
        "gates": [[g, subject, status, without_values(detail)[:500]] for g, subject, status, detail in gates][:MAX_GATES]}))


def profile_summary(profile: Mapping[str, Any]) -> dict[str, Any]:
    """What the catalog shows of a feature's training profile: aggregates (null rate, mean, the first and last
    decile edges of a number), never a categorical value (only how many of them the profile counted)."""
    edges = profile.get("edges") or []
    out = {"kind": profile.get("kind"), "count": profile.get("count"), "null_rate": profile.get("null_rate")}
    if profile.get("kind") == "numeric":
        out.update(mean=profile.get("mean"), low=edges[0] if edges else None, high=edges[-1] if edges else None)
    else:
        out["categories"] = len(profile.get("shares") or {})
    return out


def record_parity(client: Any, result: ParityResult) -> None:
    client.hset(GUARD_RESULTS, f"parity:{result.view}", json.dumps({
        "checked_at": result.checked_at, "compared": result.compared, "mismatched": result.mismatched,
        "missing_online": result.missing_online, "pending": result.pending, "example": result.example}))


def parse_lag_history(raw: Mapping) -> LagHistory:
    """`fh:lag_history` as HGETALL returns it (bytes or text): view@N -> samples, oldest first."""
    return LagHistory(raw)


def _samples(value: Any) -> list[LagSample]:
    """One view's points; none when they do not parse (a picture is never worth an error page)."""
    try:
        samples = [LagSample(float(p[0]), None if p[1] is None else float(p[1]), float(p[2])) for p in json.loads(value)]
    except (ValueError, TypeError, IndexError):
        return []
    finite = (s for s in samples if math.isfinite(s.at) and math.isfinite(s.after)
              and (s.before is None or math.isfinite(s.before)))
    return sorted(finite, key=lambda s: s.at)


def parse_guard_results(raw: Mapping) -> dict[str, ParityResult]:
    """`fh:guard_results` as HGETALL returns it: view@N -> its last parity check (other kinds left out)."""
    out: dict[str, ParityResult] = {}
    for key, value in raw.items():
        kind, _, view = _text(key).partition(":")
        if kind != "parity":
            continue
        try:
            r = json.loads(value)
            out[view] = ParityResult(view, float(r["checked_at"]), int(r["compared"]), int(r["mismatched"]),
                                     int(r.get("missing_online", 0)), int(r.get("pending", 0)), str(r.get("example", "")))
        except (ValueError, TypeError, KeyError):
            continue
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
