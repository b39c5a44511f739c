"""Guardrails: checks that keep what serving gives equal to what training saw.

schema_gate (published schemas vs the project's current SQL), freshness, parity (online vs the
warehouse), served (the log of served vectors), skew and drift (served vs training), lineage and the
model deploy check that runs them all for one model version. Each returns typed results; the CLI
prints them and turns failures into exit code 1.
"""
