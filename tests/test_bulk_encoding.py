"""A sync encodes each batch at once (keys by Arrow, payloads through one msgpack Packer); what it
writes must be byte for byte what the row-at-a-time definitions (`entity_key`, `encode_values`) give,
which serving, forget and the guards use to find and read the same hashes."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurehouse.online.codec import decode_values, encode_rows, encode_values
from featurehouse.online.keys import entity_key, entity_keys

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
texts = st.text(alphabet=st.sampled_from(list("ab%|{}:; 7é日\\*")), max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_keys_made_by_arrow_equal_entity_key_row_by_row(data):
    kinds = data.draw(st.lists(st.sampled_from(["int", "str"]), min_size=1, max_size=3))
    n = data.draw(st.integers(min_value=0, max_value=20))
    columns, arrays = [], []
    for kind in kinds:
        values = data.draw(st.lists(ints if kind == "int" else texts, min_size=n, max_size=n))
        columns.append(values)
        arrays.append(pa.chunked_array([pa.array(values, pa.int64() if kind == "int" else pa.string())]))
    want = [entity_key("t", key) for key in zip(*columns)]
    assert entity_keys("t", arrays) == want


def test_keys_of_other_types_take_the_row_by_row_path_and_a_null_key_is_refused_alike():
    days = pa.chunked_array([pa.array([date(2026, 1, 2)])])
    assert entity_keys("d", [days]) == [entity_key("d", (date(2026, 1, 2),))]
    with pytest.raises(ValueError, match="not usable as a key"):
        entity_keys("u", [pa.chunked_array([pa.array([1, None])])])
    with pytest.raises(ValueError, match="not usable as a key"):
        entity_keys("u", [pa.chunked_array([pa.array([True])])])


values = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=True), texts,
                   st.datetimes(min_value=datetime(1970, 1, 1)), st.dates(),
                   st.decimals(allow_nan=False, allow_infinity=False, places=3),
                   st.lists(ints, max_size=3), st.binary(max_size=4))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(values, min_size=1, max_size=5).map(tuple), max_size=10))
def test_rows_packed_together_equal_each_packed_alone(rows):
    packed = encode_rows(rows)
    assert packed == [encode_values(list(r)) for r in rows]
    for row, payload in zip(rows, packed):  # and they read back as what was written
        back = decode_values(payload)
        assert len(back) == len(row)
        for a, b in zip(back, row):
            if isinstance(b, float) and math.isnan(b):
                assert isinstance(a, float) and math.isnan(a)
            elif isinstance(b, Decimal):
                assert a == b
