from datetime import timedelta

import pytest

from featurehouse.durations import format_duration, parse_duration
from featurehouse.errors import InvalidDuration


@pytest.mark.parametrize("text, expected", [
    ("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)),
    ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2)), ("1h30m", timedelta(minutes=90)),
    ("250ms", timedelta(milliseconds=250)), (30, timedelta(seconds=30)), (None, None),
])
def test_durations_are_read(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "7 days", "d", "1h 3", "-1s", True])
def test_bad_durations_are_rejected(text):
    with pytest.raises(InvalidDuration):
        parse_duration(text)


def test_format_round_trips():
    for text in ("7d", "1h30m", "90s", "250ms"):
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("value", [timedelta(seconds=3, microseconds=7), timedelta(microseconds=1),
                                   timedelta(hours=1, seconds=1, microseconds=500_000), timedelta(milliseconds=250),
                                   timedelta(days=2, minutes=3), timedelta(0)])
def test_a_formatted_duration_reads_back_exactly(value):
    """format_duration writes what parse_duration (and the dbt macros) read: 3.000007s, not 3s7e-06s."""
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("text", ["99999999999d", 1e20, float("inf"), float("nan")])
def test_a_duration_too_large_or_not_finite_is_a_duration_error(text):
    with pytest.raises(InvalidDuration):
        parse_duration(text)
