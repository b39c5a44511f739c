"""Benchmark: the web catalog at 10,000 features (200 views x 50 features), server time per page.

Measured in one process, medians of --repeat runs after one warm-up (templates compiled, as in a serve
worker after its first page):

  index build            CatalogIndex(registry): once per worker, at its first /ui request
  views page             GET /ui (50 views a page)
  search, broad          GET /ui?q=team-3 (1,450 matches, the first 50 shown)
  search, narrow         GET /ui?q=v0042 f7 (1 match)
  view page              GET /ui/views/v0042 (50 features, live freshness from marks)
  JSON search            GET /ui/api/search?q=team-3 (the same search, no HTML)
  static export          featurehouse docs generate's writer: every page of the site, to a temp dir

Pages go through the real app (Starlette's TestClient, in process, no network), so routing, the
renderer and the freshness panel are all in the figure; the budget (issue 14) is under 1 s a page.

    python bench/catalog_ui.py [--views 200] [--features 50] [--repeat 5]
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
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation  # noqa: E402
from featurehouse.serving.app import ServeConfig, create_app  # noqa: E402
from featurehouse.ui.catalog import CatalogIndex  # noqa: E402
from featurehouse.ui.export import export_site  # noqa: E402
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
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    reg = registry(a.views, a.features)
    tmp = Path(tempfile.mkdtemp(prefix="fh-bench-ui-"))
    with EmbeddedRedis(tmp / "redis", persist=False) as server:
        from starlette.testclient import TestClient

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
            results["JSON search"] = timed(lambda: get("/ui/api/search", q="team-3"), a.repeat)
        index = CatalogIndex(reg)
        results["static export (whole site)"] = timed(
            lambda: export_site(index, Path(tempfile.mkdtemp(dir=tmp)), {}, "bench", "now"), 1)
    features = a.views * a.features
    print(f"\nweb catalog, {a.views} views x {a.features} features = {features:,} features; median of {a.repeat}")
    print(f"{'step':<30}{'ms':>10}  budget {BUDGET_S * 1000:.0f} ms a page")
    for name, seconds in results.items():
        page = name not in ("index build", "static export (whole site)")
        print(f"{name:<30}{seconds * 1000:>10.1f}  {'ok' if not page or seconds < BUDGET_S else 'OVER'}")
    print(json.dumps({"features": features, **{k: round(v, 4) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
