"""Durations as written in feature metadata: `90s`, `15m`, `1h`, `7d`, `2w`, or combined `1h30m`."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from featurehouse.errors import InvalidDuration

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | int | float | None) -> timedelta | None:
    """Read a duration; None stays None. Bare numbers are seconds."""
    if text is None:
        return None
    if isinstance(text, bool):
        raise InvalidDuration(f"bad duration {text!r} (use e.g. 90s, 15m, 1h, 7d)")
    if isinstance(text, (int, float)):
        if text < 0 or not math.isfinite(text):
            raise InvalidDuration(f"bad duration {text!r}: must be a finite number of seconds, not negative")
        try:
            return timedelta(seconds=text)
        except OverflowError:
            raise InvalidDuration(f"duration {text!r} is too large (at most {timedelta.max.days:,} days)") from None
    s = str(text).strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise InvalidDuration(f"bad duration {text!r} (use e.g. 90s, 15m, 1h, 7d)")
    try:
        return timedelta(seconds=total)
    except OverflowError:
        raise InvalidDuration(f"duration {text!r} is too large (at most {timedelta.max.days:,} days)") from None


def format_duration(value: timedelta | None) -> str:
    """The shortest exact spelling, e.g. 7d or 1h30m; '-' for None."""
    if value is None:
        return "-"
    us = round(value.total_seconds() * 1_000_000)
    if us == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        n, us = divmod(us, size * 1_000_000)
        if n:
            parts.append(f"{n}{unit}")
    seconds, fraction = divmod(us, 1_000_000)
    if fraction == 0:
        parts += [f"{seconds}s"] if seconds else []
    elif seconds == 0 and fraction % 1000 == 0:
        parts.append(f"{fraction // 1000}ms")
    else:  # one number of seconds with its fraction (3.000007s): what parse_duration and the macros read back
        parts.append(f"{seconds}.{fraction:06d}".rstrip("0") + "s")
    return "".join(parts)
