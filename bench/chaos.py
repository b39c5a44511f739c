"""Longer chaos runs than CI's: the whole write path under injected faults (tests/chaos.py).

    python bench/chaos.py --seconds 300 --engine duckdb --engine postgres --seed 1

For each engine: faults injected by kind, rows written, served values sampled during the run and
values checked after the documented recovery, with the number that were wrong (must be 0). Exit 1
when any check failed. Figures go in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chaos import Engine, chaos  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long faults are injected, per engine")
    parser.add_argument("--engine", action="append", choices=["duckdb", "postgres"],
                        help="repeatable (default: duckdb)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-url", default=os.environ.get("FEATUREHOUSE_TEST_POSTGRES_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--verbose", action="store_true", help="print each fault as it is injected")
    args = parser.parse_args()
    failed = False
    for name in args.engine or ["duckdb"]:
        engine = Engine("duckdb")
        if name == "postgres":
            url = urlparse(args.pg_url)
            engine = Engine("postgres", {"host": url.hostname or "127.0.0.1", "port": url.port or 5432,
                                         "user": url.username or "postgres", "dbname": url.path.lstrip("/") or "postgres"},
                            tag=f"_bench_{os.getpid()}")
        with tempfile.TemporaryDirectory(prefix="featurehouse-chaos-") as tmp, \
                chaos(Path(tmp), engine, args.seed, print if args.verbose else None) as run:
            report = run.run(args.seconds)
        print(report.summary(), flush=True)
        failed = failed or not report.ok
        for problem in (report.wrong_served_ok + report.wrong_final + report.lost_pushes + report.missing_dead_letters)[:10]:
            print(f"  wrong: {problem}")
        for problem in report.regressed_ok[:5]:
            print(f"  served older than before: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
