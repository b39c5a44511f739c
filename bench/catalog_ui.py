"""Benchmark: the web catalog at 10,000 features (200 views x 50 features), server time per page.

Measured in one process, medians of --repeat runs after one warm-up (templates compiled, as in a serve
worker after its first page):

  index build            CatalogIndex(registry): once per worker, at its first /ui request
  views page             GET /ui (50 views a page)
  search, broad          GET /ui?q=team-3 (1,450 matches, the first 50 shown)
  search, narrow         GET /ui?q=v0042 f7 (1 match)
  view page              GET /ui/views/v0042 (50 features, live freshness from marks, its lag history of
                         240 points, parity, the gates of the model versions trained on it)
  health page            GET /ui/health (a tile per view, each with its sparkline)
  models page            GET /ui/models (--models model versions)
  model page             GET /ui/models/m0042@1 (20 features over 4 views, profiles, every gate)
  JSON search            GET /ui/api/search?q=team-3 (the same search, no HTML)
  observations read      the online store's hashes a page reads (lag history, parity, model versions,
                         records, deploy checks), parsed: paid by the first page of each second
  static export          featurehouse docs generate's writer: every page of the site, to a temp dir

Pages go through the real app (Starlette's TestClient, in process, no network), so routing, the
renderer and the freshness panel are all in the figure; the budget (issue 14) is under 1 s a page.

The online store holds what the guards leave there: 240 lag points and a parity result per view, and
--models model versions, each with a training-set summary and a deploy check of every gate.

    python bench/catalog_ui.py [--views 200] [--features 50] [--models 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from featurehouse.online.embedded import EmbeddedRedis  # noqa: E402
from featurehouse.online.history import KEEP_SAMPLES, ParityResult, record_lag_sample, record_parity  # noqa: E402
from featurehouse.online.keys import DEPLOY_CHECKS, MODEL_RECORDS, MODEL_VERSIONS  # noqa: E402
from featurehouse.online.store import RedisOnlineStore  # noqa: E402
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation  # noqa: E402
from featurehouse.serving.app import ServeConfig, create_app  # noqa: E402
from featurehouse.ui.catalog import CatalogIndex  # noqa: E402
from featurehouse.ui.export import export_site  # noqa: E402
from featurehouse.ui.observed import read_observed  # noqa: E402
from featurehouse.ui.routes import catalog_pages  # noqa: E402

BUDGET_S = 1.0


def registry(views: int, features: int) -> Registry:
    r = Registry()
    for i in range(views):
        entity = Entity(f"entity_{i}", (f"id_{i}",))
        r.entities[entity.name] = entity
        name = f"v{i:04d}"
        r.add(FeatureView(name, 1, entity, Relation(None, None, name), "event_time",
                          tuple(Feature(name, f"f{j}", "double", 1, f"feature {j} of view {i}") for j in range(features)),
                          owner=f"team-{i % 7}", tags=("generated",), description=f"generated view {i}"))
    return r


def observations(online: RedisOnlineStore, views: int, models: int) -> None:
    """What sync, parity, model register and deploy-check leave in the online store, at scale."""
    now = time.time()
    client = online.client
    for i in range(views):
        for k in range(KEEP_SAMPLES):
            record_lag_sample(client, f"v{i:04d}@1", now - (KEEP_SAMPLES - k) * 900, 900.0, 0.0)
        record_parity(client, ParityResult(f"v{i:04d}@1", now, 1000, i % 3, 0, 0, ""))
    for m in range(models):
        features = [f"v{(m + k) % views:04d}.f{j}@1" for k in range(4) for j in range(5)]
        profile = {f: {"kind": "numeric", "count": 10_000, "null_rate": 0.01, "mean": 1.5,
                       "edges": [float(e) for e in range(11)], "shares": [0.1] * 12} for f in features}
        client.hset(MODEL_VERSIONS, f"m{m:04d}@1", json.dumps({"features": features, "training_set": f"ts_{m}"}))
        client.hset(MODEL_RECORDS, f"m{m:04d}@1", json.dumps({"registered_at": "2026-12-01T10:00:00", "source": "cli",
                                                              "training_set_record": {
            "created_at": "2026-12-01T09:00:00", "name": f"m{m}", "spine_fingerprint": "0" * 16, "row_count": 10_000,
            "entity_timestamp": "ts", "engine": "duckdb", "schemas": {f: "double" for f in features},
            "transforms": {}, "profile": profile}}))
        gates = [["schema", "20 features", "pass", ""]] + [[g, f, "pass", "0 of 1,000"] for g in ("skew", "drift")
                                                           for f in features]
        client.hset(DEPLOY_CHECKS, f"m{m:04d}@1", json.dumps({"ok": True, "checked_at": now, "failures": [],
                                                              "gates": gates}))


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--views", type=int, default=200)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    reg = registry(a.views, a.features)
    tmp = Path(tempfile.mkdtemp(prefix="fh-bench-ui-"))
    with EmbeddedRedis(tmp / "redis", persist=False) as server:
        from starlette.testclient import TestClient

        online = RedisOnlineStore.from_url(server.url)
        observations(online, a.views, a.models)

        app = create_app(reg, ServeConfig(redis_url=server.url, auth="none", log_sample_rate=0.0),
                         pages=catalog_pages(reg, "bench"))
        results: dict[str, float] = {"index build": timed(lambda: CatalogIndex(reg), a.repeat)}
        with TestClient(app) as http:
            def get(path: str, **params) -> None:
                r = http.get(path, params=params)
                assert r.status_code == 200, (path, r.status_code)

            results["views page"] = timed(lambda: get("/ui"), a.repeat)
            results["search, broad"] = timed(lambda: get("/ui", q="team-3"), a.repeat)
            results["search, narrow"] = timed(lambda: get("/ui", q="v0042 f7"), a.repeat)
            results["view page"] = timed(lambda: get("/ui/views/v0042"), a.repeat)
            results["health page"] = timed(lambda: get("/ui/health"), a.repeat)
            results["models page"] = timed(lambda: get("/ui/models"), a.repeat)
            results["model page"] = timed(lambda: get("/ui/models/m0042@1"), a.repeat)
            results["JSON search"] = timed(lambda: get("/ui/api/search", q="team-3"), a.repeat)
        index = CatalogIndex(reg)
        results["observations read"] = timed(lambda: read_observed(online.client), a.repeat)
        seen = read_observed(online.client)
        results["static export (whole site)"] = timed(
            lambda: export_site(index, Path(tempfile.mkdtemp(dir=tmp)), {}, "bench", "now", observed=seen,
                                now_s=time.time()), 1)
        online.close()
    features = a.views * a.features
    print(f"\nweb catalog, {a.views} views x {a.features} features = {features:,} features, {a.models} model "
          f"versions; median of {a.repeat}")
    print(f"{'step':<30}{'ms':>10}  budget {BUDGET_S * 1000:.0f} ms a page")
    for name, seconds in results.items():
        page = name not in ("index build", "observations read", "static export (whole site)")
        print(f"{name:<30}{seconds * 1000:>10.1f}  {'ok' if not page or seconds < BUDGET_S else 'OVER'}")
    print(json.dumps({"features": features, **{k: round(v, 4) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
