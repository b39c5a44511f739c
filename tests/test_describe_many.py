"""Describing many relations in one round trip (the registry load describes every view) gives what
describing each one gives, on every engine: same columns, same order, same type names, None for a
relation not built, and a relation without a schema matching as `describe` matches it."""

from __future__ import annotations

import uuid

from featurehouse.registry.model import Relation


def test_describe_many_equals_describe_one_by_one(warehouse):
    a, b = f"fh_dm_a_{uuid.uuid4().hex[:8]}", f"fh_dm_b_{uuid.uuid4().hex[:8]}"
    table = f"t_{uuid.uuid4().hex[:8]}"
    try:
        for schema in (a, b):
            warehouse.execute(f'CREATE SCHEMA "{schema}"')
        warehouse.execute(f'CREATE TABLE "{a}"."{table}" (x BIGINT, y VARCHAR, "Mixed Case" DOUBLE PRECISION)')
        warehouse.execute(f'CREATE TABLE "{b}"."{table}" (z TIMESTAMP)')
        warehouse.execute(f'CREATE TABLE "{a}".other (k INTEGER)')
        relations = [Relation(None, a, table), Relation(None, b, table), Relation(None, a, "other"),
                     Relation(None, a, "never_built"), Relation(None, b, "other")]
        many = warehouse.describe_many(relations)
        assert many == {r: warehouse.describe(r) for r in relations}
        assert list(many[relations[0]]) == ["x", "y", "Mixed Case"]
        assert many[relations[3]] is None and many[relations[4]] is None
        assert warehouse.describe_many([]) == {}
    finally:
        for schema in (a, b):
            warehouse.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
