"""Benchmark: `featurehouse serve` with 1 and 2 workers over HTTP on a local Redis Cluster (3 primaries + 3
replicas): requests and vectors per second, and per core of serving and of Redis, for single vectors (a random
user of `--entities`) and batches of 100.

    python bench/http_cluster.py [--entities 200000] [--features 6] [--duration 10] [--connections 32]

The users are written through featurehouse's guarded writer; the server is handed the registry
(FEATUREHOUSE_REGISTRY_SNAPSHOT, as `featurehouse demo` hands it) and runs with `auth: none` on loopback
(bench/serve.py measures what a bearer token costs). wrk (apt install wrk) drives it with 2 threads. The
serving processes' CPU seconds (psutil, the whole process tree) and the primaries' used_cpu_sys+user over
each run give the per-core figures; wrk, the workers and six redis-servers share the machine's cores, so
reads/s is what this machine gives and the per-core figures are what to size with (docs/capacity.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from cluster import load, names, redis_cpu, registry  # noqa: E402
from serve import free_port, wait_for, wrk  # noqa: E402

from featurehouse.online.local_cluster import LocalRedisCluster  # noqa: E402
from featurehouse.registry.snapshot import save_snapshot  # noqa: E402


def project_in(directory: Path) -> Path:
    """The smallest dbt project `featurehouse serve` starts in (its registry is handed over)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dbt_project.yml").write_text("name: bench_http\nversion: '1.0'\nprofile: bench_http\n")
    (directory / "profiles.yml").write_text(
        "bench_http:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: bench.duckdb\n")
    return directory


def serving_cpu(proc) -> float:
    """CPU seconds used so far by a process and its living children."""
    import psutil

    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def measure(label: str, url: str, serve_proc, primaries: list[dict], a, script: Path, vectors_per_request: int) -> dict:
    import psutil

    server = psutil.Process(serve_proc.pid)
    cpu0, redis0 = serving_cpu(server), redis_cpu(primaries)
    result = wrk(url, a.duration, a.connections, script)
    serve_s, redis_s = serving_cpu(server) - cpu0, redis_cpu(primaries) - redis0
    requests = result["rps"] * a.duration
    vectors = requests * vectors_per_request
    return {"label": label, "requests_per_s": result["rps"], "vectors_per_s": result["rps"] * vectors_per_request,
            "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "non_2xx": result["non_2xx"],
            "vectors_per_serving_core_s": vectors / serve_s, "serving_cores": serve_s / a.duration,
            "redis_cpu_us_per_vector": redis_s / vectors * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=6)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    reg = registry(a.features)
    wanted = ",".join(names(a.features))
    rows = []
    with tempfile.TemporaryDirectory(prefix="fh-bench-http-") as tmp, \
            LocalRedisCluster(Path(tmp) / "cluster", primaries=3, replicas=1) as cluster:
        work = Path(tmp)
        rate = load(cluster.url, reg, a.entities, a.features)
        print(f"loaded {a.entities:,} users x {a.features} features into the cluster ({rate:,.0f}/s)", file=sys.stderr)
        primaries = [{"port": n.port} for n in cluster.primaries()]
        project = project_in(work / "project")
        snapshot = save_snapshot(reg, work / "registry.pickle")
        single = work / "single.lua"
        single.write_text(f"math.randomseed({os.getpid()})\n"
                          f"request = function()\n  return wrk.format('GET', '/v1/features/user/' .. "
                          f"math.random(1, {a.entities}) .. '?names={wanted}')\nend\n")
        batch = work / "batch.lua"
        ids = [str(1 + (i * 7919) % a.entities) for i in range(100)]  # spread over the slots
        payload = json.dumps({"ids": ids, "names": names(a.features)})
        batch.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(payload)}\n'
                         'wrk.headers["Content-Type"] = "application/json"\n')
        for workers in (int(w) for w in a.workers.split(",")):
            port = free_port()
            env = dict(os.environ, FEATUREHOUSE_REDIS_URL=cluster.url, FEATUREHOUSE_REGISTRY_SNAPSHOT=str(snapshot),
                       FEATUREHOUSE_AUTH="none", FEATUREHOUSE_LOG_SAMPLE_RATE="0")
            proc = subprocess.Popen([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(project), "serve",
                                     "--port", str(port), "--workers", str(workers)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_for(f"{base}/v1/features/user/1?names={wanted}", proc)
                import urllib.request

                body = json.loads(urllib.request.urlopen(f"{base}/v1/features/user/{a.entities}?names={wanted}").read())
                assert all(f["status"] == "ok" for f in body["features"].values()), body  # served, not missing
                time.sleep(1.0)  # every worker up, not only the first to answer
                rows.append({"workers": workers, **measure("1 vector", f"{base}/v1/features/user/1", proc, primaries,
                                                           a, single, 1)})
                rows.append({"workers": workers, **measure("batch of 100", f"{base}/v1/features/user:batchGet", proc,
                                                           primaries, a, batch, 100)})
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    print(f"\n{'workers':>7} {'request':<13}{'req/s':>9}{'vectors/s':>11}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'serving cores':>14}{'vectors/serving core-s':>24}{'Redis us/vector':>17}{'non-2xx':>9}")
    for r in rows:
        print(f"{r['workers']:>7} {r['label']:<13}{r['requests_per_s']:>9,.0f}{r['vectors_per_s']:>11,.0f}"
              f"{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{r['serving_cores']:>14.2f}{r['vectors_per_serving_core_s']:>24,.0f}"
              f"{r['redis_cpu_us_per_vector']:>17.2f}{r['non_2xx']:>9}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
