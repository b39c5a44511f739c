"""A small dbt project written from scratch (not the example): a shop's customers and their orders.

It adopts featurehouse the documented way (the repo as a local dbt package, entities in vars), so
tests of "one truth" run on a project whose YAML column order, typing style and versions they
choose, independent of the example project's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from featurehouse.offline.warehouse import DuckDBWarehouse

REPO = Path(__file__).resolve().parent.parent


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def orders(customers: int = 20, factor: int = 1) -> pa.Table:
    """Each customer's order history: n_small and n_large differ for every customer, so a swap shows."""
    base = now() - timedelta(hours=6)
    rows = []
    for c in range(1, customers + 1):
        for i in range(1 + c % 3):
            t = base + timedelta(minutes=10 * i + c)
            rows.append({"customer_id": c, "ts": t, "ingested": t + timedelta(seconds=5),
                         "n_small": factor * (c % 5 + i), "n_large": factor * (100 + c + i), "score": c / 7 + i})
    return pa.Table.from_pylist(rows)


def write_project(root: Path, yaml_columns: list[str] | None = None, versions: int = 1, scores: bool = True,
                  catalog_schema: str | None = None) -> Path:
    """The project at root/shop. `yaml_columns`: the order the YAML lists customer_orders' features in
    (its SELECT says n_small, n_large); `versions` > 1 makes customer_orders a dbt versioned model
    whose version N has the same features with values multiplied by N. `scores` adds customer_scores,
    a view typed by its built relation alone (no YAML columns). `catalog_schema` sets
    vars.featurehouse.schema (where featurehouse keeps its own tables)."""
    project = root / "shop"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n"
        "vars:\n  featurehouse:\n    entities:\n      customer: [customer_id]\n"
        + (f"    schema: {catalog_schema}\n" if catalog_schema else "")
        + "models:\n  shop:\n    +materialized: table\n")
    (project / "profiles.yml").write_text(
        "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: shop.duckdb\n      threads: 1\n")
    (project / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    (project / "models" / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables: [{name: orders}]\n")
    columns = yaml_columns or ["n_small", "n_large"]
    meta = ("{'entity': 'customer', 'event_time': 'event_time', 'created_at': 'created_at', 'ttl': '30d', "
            "'freshness_slo': '1d', 'owner': 'shop-team'}")
    for v in range(1, versions + 1):  # dbt model versions: customer_orders_v1.sql, _v2.sql, ...
        (project / "models" / f"customer_orders{'_v' + str(v) if versions > 1 else ''}.sql").write_text(
            f"{{{{ config(meta={{'featurehouse': {meta}}}) }}}}\n"
            f"select customer_id, ts as event_time, ingested as created_at, n_small * {v} as n_small,\n"
            f"       n_large * {v} as n_large\nfrom {{{{ source('raw', 'orders') }}}}\n")
    yml = ["version: 2", "models:", "  - name: customer_orders"]
    if versions > 1:
        yml += ["    latest_version: 1", "    versions:"] + [f"      - v: {v}" for v in range(1, versions + 1)]
    yml += ["    columns:", "      - {name: customer_id, data_type: bigint}",
            "      - {name: event_time, data_type: timestamp}", "      - {name: created_at, data_type: timestamp}"]
    yml += [f"      - {{name: {c}, data_type: bigint}}" for c in columns]
    (project / "models" / "features.yml").write_text("\n".join(yml) + "\n")
    if scores:  # typed by the built relation only: no YAML columns at all (the README's own style)
        (project / "models" / "customer_scores.sql").write_text(
            "{{ config(meta={'featurehouse': {'entity': 'customer', 'event_time': 'event_time', 'ttl': '30d'}}) }}\n"
            "select customer_id, ts as event_time, score from {{ source('raw', 'orders') }}\n")
    load_raw(project, orders())
    return project


def load_raw(project: Path, table: pa.Table) -> None:
    with DuckDBWarehouse(project / "shop.duckdb") as wh:
        wh.replace_table("raw", "orders", table)


@contextlib.contextmanager
def serving(project: Path, redis_url: str, *args: str) -> Iterator[str]:
    """A real `featurehouse serve` process on the project; yields its base URL once /healthz answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["FEATUREHOUSE_REDIS_URL"] = redis_url
    env.setdefault("FEATUREHOUSE_AUTH", "none")  # loopback; tests of tokens set their own
    proc = subprocess.Popen([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(project),
                             "serve", "--port", str(port), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"featurehouse serve exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("featurehouse serve did not answer within 30 s") from None
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
