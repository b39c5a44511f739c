"""A chaos run: the whole write path on a real Redis and a real warehouse while it is being broken.

Batch rows land in the warehouse (some late), rows are pushed (new, old, future and hostile ones,
and entries no consumer can decode), a `featurehouse stream` consumer and `featurehouse sync`
processes apply them, and a sampler reads vectors as serving does. Meanwhile faults are injected:
sync and the consumer SIGKILLed at random points, Redis restarted, restored from an older snapshot
and frozen (SIGSTOP), the DuckDB file held by another process. Then the documented recovery
(`featurehouse stream --once`, `featurehouse sync`) and an exact check: every online value equals
the oracle's latest over everything the warehouse holds, every accepted push is in the warehouse,
every poison row is in a dead-letter stream with its reason, and nothing served as `ok` during the
run was a value the warehouse never held.

Used by tests/test_faults.py (short runs in CI) and bench/chaos.py (long runs).
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import redis

REPO = Path(__file__).resolve().parent.parent
VIEW = "acct_activity"
KEYS = list(range(1, 41))
FEATURES = ("amount", "n", "note")
REFRESH_S = 0.05  # the sampler's reader re-reads the store's marks this often


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# -- the project ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    name: str  # duckdb | postgres
    pg: dict | None = None  # host, port, user, dbname
    tag: str = ""  # makes PostgreSQL schemas unique to this run

    @property
    def raw_schema(self) -> str:
        return f"chaos_raw{self.tag}" if self.name == "postgres" else "raw"

    @property
    def catalog_schema(self) -> str:
        return f"chaos_fh{self.tag}" if self.name == "postgres" else "featurehouse"

    @property
    def model_schema(self) -> str:
        return f"chaos{self.tag}" if self.name == "postgres" else "main"


def write_project(root: Path, engine: Engine) -> Path:
    """A ledger of account activity, its one feature view a dbt *view* over the raw table: a row
    inserted into the raw table has landed in the view's relation at once (as after a dbt build)."""
    project = root / "ledger"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: ledger\nversion: '1.0'\nconfig-version: 2\nprofile: ledger\n"
        "vars:\n  featurehouse:\n    entities:\n      acct: [acct_id]\n"
        f"    schema: {engine.catalog_schema}\n"
        "models:\n  ledger:\n    +materialized: view\n")
    if engine.name == "duckdb":
        output = "      type: duckdb\n      path: ledger.duckdb\n      threads: 1\n"
    else:
        pg = engine.pg or {}
        output = (f"      type: postgres\n      host: {pg['host']}\n      port: {pg['port']}\n      user: {pg['user']}\n"
                  f"      password: ''\n      dbname: {pg['dbname']}\n      schema: {engine.model_schema}\n      threads: 1\n")
    (project / "profiles.yml").write_text(f"ledger:\n  target: dev\n  outputs:\n    dev:\n{output}")
    (project / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    (project / "models" / "sources.yml").write_text(
        f"version: 2\nsources:\n  - name: raw\n    schema: {engine.raw_schema}\n    tables: [{{name: events}}]\n")
    meta = "{'entity': 'acct', 'event_time': 'event_time', 'created_at': 'created_at', 'freshness_slo': '1h', 'ttl': '30d'}"
    (project / "models" / f"{VIEW}.sql").write_text(
        f"{{{{ config(meta={{'featurehouse': {meta}}}) }}}}\n"
        "select acct_id, event_time, created_at, amount, n, note from {{ source('raw', 'events') }}\n")
    double = "double" if engine.name == "duckdb" else "double precision"
    (project / "models" / "features.yml").write_text(
        "version: 2\nmodels:\n  - name: acct_activity\n    columns:\n"
        "      - {name: acct_id, data_type: bigint}\n      - {name: event_time, data_type: timestamp}\n"
        "      - {name: created_at, data_type: timestamp}\n"
        f"      - {{name: amount, data_type: '{double}'}}\n      - {{name: n, data_type: bigint}}\n"
        "      - {name: note, data_type: varchar}\n")
    return project


class Raw:
    """The raw table batch rows land in, written the way a loader would (its own connection)."""

    def __init__(self, project: Path, engine: Engine):
        self.project, self.engine = project, engine
        self.table = f'"{engine.raw_schema}"."events"'
        self._pg = None
        if engine.name == "postgres":
            import psycopg2

            pg = engine.pg or {}
            self._pg = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], dbname=pg["dbname"])
            self._pg.autocommit = True

    def create(self) -> None:
        double = "double" if self.engine.name == "duckdb" else "double precision"
        self._run([f'create schema if not exists "{self.engine.raw_schema}"',
                   f"drop table if exists {self.table}",
                   f"create table {self.table} (acct_id bigint, event_time timestamp, created_at timestamp, "
                   f"amount {double}, n bigint, note varchar)"])

    def insert(self, rows: list[dict], deadline_s: float = 60.0) -> None:
        values = [(r["acct_id"], r["event_time"], r["created_at"], r["amount"], r["n"], r["note"]) for r in rows]
        sql = f"insert into {self.table} values (?, ?, ?, ?, ?, ?)"
        self._run([sql], values, deadline_s)

    def rows(self, relation: str) -> list[dict]:
        sql = f"select acct_id, event_time, created_at, amount, n, note from {relation}"
        if self._pg is not None:
            with self._pg.cursor() as cur:
                cur.execute(sql)
                names = [d[0] for d in cur.description]
                return [dict(zip(names, r)) for r in cur.fetchall()]
        return self._duckdb(lambda con: con.sql(sql).to_arrow_table().to_pylist())

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()

    def _run(self, statements: list[str], many: list[tuple] | None = None, deadline_s: float = 60.0) -> None:
        if self._pg is not None:
            with self._pg.cursor() as cur:
                for sql in statements:
                    if many is not None:
                        cur.executemany(sql.replace("?", "%s"), many)
                    else:
                        cur.execute(sql)
            return

        def run(con):
            for sql in statements:
                con.executemany(sql, many) if many is not None else con.execute(sql)

        self._duckdb(run, deadline_s)

    def _duckdb(self, work: Callable[[Any], Any], deadline_s: float = 60.0) -> Any:
        """A short connection, retried while another process holds the file (as a loader would)."""
        import duckdb

        deadline = time.monotonic() + deadline_s
        while True:
            try:
                con = duckdb.connect(str(self.project / "ledger.duckdb"))
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
                continue
            try:
                return work(con)
            finally:
                con.close()


# -- Redis, under our control ----------------------------------------------------------------------


class RedisProcess:
    """A private redis-server on a unix socket with an append-only file, which the run restarts,
    freezes and restores from an older snapshot."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen | None = None
        self.frozen = False
        self.dbfilename = "dump.rdb"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self, timeout: float | None = 2.0) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=timeout, socket_connect_timeout=timeout)

    def start(self, dbfilename: str = "dump.rdb", appendonly: bool = True) -> None:
        from featurehouse.online.embedded import server_binary

        if self.socket.exists():
            self.socket.unlink()
        args = [server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--dir", str(self.dir), "--dbfilename", dbfilename, "--save", "",
                "--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec",
                "--loglevel", "warning", "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.frozen, self.dbfilename = False, dbfilename
        self._wait_up()

    def _wait_up(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                client = self.client(0.5)
                if client.ping():
                    info = client.info("persistence")
                    if not info.get("loading"):
                        client.close()
                        return
                client.close()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-800:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not come up")
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM: the append-only file is flushed (a clean restart keeps everything)."""
        if self.proc is None:
            return
        if self.frozen:
            self.thaw()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def snapshot(self) -> Path:
        """An RDB snapshot of now, kept aside (a backup)."""
        client = self.client(30)
        client.save()
        client.close()
        kept = self.dir / "older.rdb"
        shutil.copyfile(self.dir / self.dbfilename, kept)
        return kept

    def restore(self, snapshot: Path) -> None:
        """Replace the server's state by an older snapshot, as an operator restoring a backup does:
        the server is killed, its append-only files are dropped, the snapshot loaded, and the append-only
        file rewritten from it."""
        if self.proc is not None:
            if self.frozen:
                self.thaw()
            self.proc.kill()
            self.proc.wait(timeout=20)
            self.proc = None
        shutil.rmtree(self.dir / "appendonlydir", ignore_errors=True)
        shutil.copyfile(snapshot, self.dir / "restore.rdb")
        self.start(dbfilename="restore.rdb", appendonly=False)
        client = self.client(30)
        client.config_set("appendonly", "yes")
        deadline = time.monotonic() + 30
        while True:
            info = client.info("persistence")
            if info.get("aof_enabled") and not info.get("aof_rewrite_in_progress") and not info.get(
                    "aof_rewrite_scheduled"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("redis did not rewrite its append-only file after a restore")
            time.sleep(0.01)
        client.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()


# -- featurehouse processes ------------------------------------------------------------------------


def cli(project: Path, redis_url: str, *args: str, log: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ, FEATUREHOUSE_REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(project), *args],
                            env=env, stdout=out, stderr=out, start_new_session=True)


def run_cli(project: Path, redis_url: str, *args: str, timeout: float = 180, log: Path | None = None) -> int:
    proc = cli(project, redis_url, *args, log=log)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class ChaosReport:
    engine: str
    seconds: float = 0.0
    faults: collections.Counter = field(default_factory=collections.Counter)
    batch_rows: int = 0
    pushes_accepted: int = 0
    pushes_rejected: int = 0
    pushes_unsure: int = 0  # the push call failed (Redis down or frozen): the row may or may not be in
    poison_entries: int = 0  # entries written straight to a stream that no consumer can decode
    samples: int = 0  # served values checked during the run
    wrong_served_ok: list[str] = field(default_factory=list)  # a value the warehouse never held
    # older than a value served ok before (outside a window the reader could not see): a restore that
    # serving did not flag; measured and reported (docs/reliability.md), not a value never held
    regressed_ok: list[str] = field(default_factory=list)
    unverified_served: int = 0
    older_in_refresh_window: int = 0  # older than before, read within a reader refresh of a restore
    entities_checked: int = 0
    values_checked: int = 0
    wrong_final: list[str] = field(default_factory=list)
    lost_pushes: list[str] = field(default_factory=list)
    dead_letters: int = 0
    missing_dead_letters: list[str] = field(default_factory=list)
    sync_exit_codes: collections.Counter = field(default_factory=collections.Counter)

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        return (f"{self.engine}: {self.seconds:.0f} s, {sum(self.faults.values())} faults ({faults}); "
                f"{self.batch_rows} batch rows, {self.pushes_accepted} pushes accepted, {self.pushes_rejected} rejected, "
                f"{self.pushes_unsure} unsure, {self.poison_entries} undecodable entries; "
                f"{self.samples} served values sampled, {len(self.wrong_served_ok)} wrong while ok "
                f"({self.unverified_served} vectors unverified; older than served before: {len(self.regressed_ok)}, "
                f"and {self.older_in_refresh_window} within a refresh of a restore); {self.values_checked} values of {self.entities_checked} "
                f"entities checked after recovery, {len(self.wrong_final)} wrong; {len(self.lost_pushes)} pushes lost; "
                f"{self.dead_letters} dead letters, {len(self.missing_dead_letters)} poison rows missing from them; "
                f"sync exits {dict(self.sync_exit_codes)}")

    @property
    def ok(self) -> bool:
        return not (self.wrong_served_ok or self.wrong_final or self.lost_pushes or self.missing_dead_letters)


def _row_key(row: dict) -> tuple:
    amount = row["amount"]
    return (row["event_time"], None if amount is None or (isinstance(amount, float) and math.isnan(amount)) else
            round(float(amount), 9), row["n"], row["note"])


HOSTILE: list[tuple[str, Callable[[datetime], dict]]] = [
    ("an integer past 64 bits", lambda now: {"acct_id": 3, "event_time": now.isoformat(), "n": 2**63}),
    ("a key past 64 bits", lambda now: {"acct_id": 2**70, "event_time": now.isoformat()}),
    ("a NUL byte", lambda now: {"acct_id": 4, "event_time": now.isoformat(), "note": "a\x00b"}),
    ("a far-future event time", lambda now: {"acct_id": 5, "event_time": "2999-01-01T00:00:00"}),
    ("an epoch of 1e20", lambda now: {"acct_id": 6, "event_time": 1e20}),
    ("year 1 in +01:00", lambda now: {"acct_id": 6, "event_time": "0001-01-01T00:00:00+01:00"}),
    ("an unknown column", lambda now: {"acct_id": 7, "event_time": now.isoformat(), "cvv": "123"}),
    ("a string amount", lambda now: {"acct_id": 8, "event_time": now.isoformat(), "amount": "lots"}),
    ("a nested key", lambda now: {"acct_id": {"a": 1}, "event_time": now.isoformat()}),
    ("a client created_at", lambda now: {"acct_id": 9, "event_time": now.isoformat(), "created_at": "2030-01-01"}),
]


class Chaos:
    def __init__(self, root: Path, engine: Engine, seed: int = 0, log: Callable[[str], None] | None = None):
        self.root, self.engine, self.rnd = root, engine, random.Random(seed)
        self.say = log or (lambda _line: None)
        self.report = ChaosReport(engine.name)
        self.project = write_project(root, engine)
        self.redis = RedisProcess(root / "redis")
        self.raw = Raw(self.project, engine)
        self.known: dict[int, set] = collections.defaultdict(set)  # acct -> rows it ever had (any source)
        self.accepted: list[dict] = []  # pushes Redis acknowledged
        self.unsure: list[dict] = []
        self.poison_ids: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.consumer: subprocess.Popen | None = None
        self.consumer_lock = threading.Lock()  # the fault and the keeper thread both restart it: one at a time
        self.sync_proc: subprocess.Popen | None = None
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.snapshot: Path | None = None
        self.newest_ok: dict[int, datetime] = {}  # acct -> the newest event served ok so far
        self.restores: list[tuple[float, float]] = []  # time.monotonic() when each restore began and ended
        self.at_snapshot = (0, 0)  # how many accepted pushes and poison entries the snapshot holds

    # setup

    def setup(self) -> None:
        self.redis.start()
        self.raw.create()
        now = utcnow()
        history = [self._batch_row(k, now - timedelta(hours=self.rnd.uniform(1, 48))) for k in KEYS for _ in range(2)]
        self._land(history)
        code = run_cli(self.project, self.redis.url, "build", log=self.logs / "build.log")
        assert code == 0, (self.logs / "build.log").read_text()[-3000:]
        code = run_cli(self.project, self.redis.url, "sync", log=self.logs / "sync.log")
        assert code == 0, (self.logs / "sync.log").read_text()[-3000:]
        self.consumer = cli(self.project, self.redis.url, "stream", log=self.logs / "stream.log")

    def _batch_row(self, key: int, event_time: datetime, created_at: datetime | None = None) -> dict:
        return {"acct_id": key, "event_time": event_time.replace(microsecond=event_time.microsecond // 1000 * 1000),
                "created_at": created_at or event_time + timedelta(seconds=1),
                "amount": round(self.rnd.uniform(-100, 100), 2), "n": self.rnd.randint(-10**12, 10**12),
                "note": self.rnd.choice(["ok", "ü", "日本", "a|b;c=d", None])}

    def _land(self, rows: list[dict]) -> None:
        with self.lock:
            for r in rows:
                self.known[r["acct_id"]].add(_row_key(r))
        self.raw.insert(rows)
        self.report.batch_rows += len(rows)

    # the workload

    def batch_rows(self) -> None:
        """A loader's batch: fresh rows, and rows that land late (ingested up to 20 minutes ago)."""
        now = utcnow()
        rows = []
        for _ in range(self.rnd.randint(1, 8)):
            event = now - timedelta(seconds=self.rnd.uniform(5, 3600))
            late = self.rnd.random() < 0.3
            created = now - timedelta(seconds=self.rnd.uniform(60, 1200)) if late else now
            rows.append(self._batch_row(self.rnd.choice(KEYS), min(event, created), created))
        self._land(rows)

    def push(self, client: redis.Redis, view) -> None:
        from featurehouse.stream.log import push

        now = utcnow()
        rows = []
        for _ in range(self.rnd.randint(1, 5)):
            age = self.rnd.choice([self.rnd.uniform(0, 300), self.rnd.uniform(3600, 86400 * 3)])  # new or old
            key = self.rnd.choice(KEYS)
            row = {"acct_id": key if self.rnd.random() < 0.8 else str(key),  # mixed key types in one batch
                   "event_time": (now - timedelta(seconds=age)).replace(microsecond=0).isoformat(),
                   "amount": round(self.rnd.uniform(-100, 100), 2), "n": self.rnd.randint(-1000, 1000),
                   "note": self.rnd.choice(["p", "ß", None])}
            rows.append(row)
        with self.lock:
            for row in rows:
                self.known[int(row["acct_id"])].add(_row_key({**row, "event_time": datetime.fromisoformat(row["event_time"])}))
        with self.lock:  # a restore waits: what it rolls back is counted exactly
            try:
                result = push(client, view, rows)
            except (redis.ConnectionError, redis.TimeoutError):
                self.unsure += rows
                self.report.pushes_unsure += len(rows)
                return
            assert not result.rejected, result.rejected
            self.accepted += rows
            self.report.pushes_accepted += result.accepted

    def hostile(self, client: redis.Redis, view) -> None:
        """Rows that must be refused (into the dead letters, naming the field), and stream entries no
        consumer can decode (dead-lettered after their deliveries run out)."""
        from featurehouse.stream.log import push, stream_key

        now = utcnow()
        name, make = self.rnd.choice(HOSTILE)
        with self.lock:
            try:
                result = push(client, view, [make(now)])
                assert result.accepted == 0, f"accepted {name}"
                assert result.rejected and name and result.rejected[0][1], f"{name}: no reason"
                self.report.pushes_rejected += 1
                if self.rnd.random() < 0.5:
                    entry = client.xadd(stream_key(view), {"r": b"\xc1 not msgpack " + os.urandom(4)})
                    self.poison_ids.append(entry.decode() if isinstance(entry, bytes) else entry)
                    self.report.poison_entries += 1
            except (redis.ConnectionError, redis.TimeoutError):
                pass

    def sample(self, reader) -> None:
        """Read vectors as serving does; a value served `ok` must be one the warehouse held."""
        ids = [str(k) for k in self.rnd.sample(KEYS, 8)]
        try:
            vectors = reader.get("acct", ids, [f"{VIEW}.{f}" for f in FEATURES])
        except (redis.ConnectionError, redis.TimeoutError):
            return
        # the marks this read judged by were read at reader._refreshed; its values by now: a restore in
        # between is one the reader could not have seen yet (the next refresh flags it)
        marks_read, values_read = reader._refreshed, time.monotonic()
        blind = any(begin <= values_read and marks_read <= end for begin, end in self.restores)
        for vector in vectors:
            values = vector.features
            status = {v.status for v in values.values()}
            self.report.samples += len(values)
            if "unverified" in status:
                self.report.unverified_served += 1
            if status != {"ok"}:
                continue
            first = values[f"{VIEW}.amount"]
            got = _row_key({"event_time": first.event_time, "amount": first.value, "n": values[f"{VIEW}.n"].value,
                            "note": values[f"{VIEW}.note"].value})
            key = int(vector.entity_id)
            with self.lock:
                held = got in self.known[key]
            if not held:
                self.report.wrong_served_ok.append(f"acct {key}: served ok {got}, never held")
            before = self.newest_ok.get(key)
            if before is not None and first.event_time is not None and first.event_time < before:
                if blind:
                    self.report.older_in_refresh_window += 1
                else:
                    self.report.regressed_ok.append(f"acct {key}: served ok {first.event_time} after {before}")
            if first.event_time is not None:
                self.newest_ok[key] = max(first.event_time, before or first.event_time)

    # faults

    def kinds(self) -> list[str]:
        kinds = ["kill_sync", "kill_consumer", "restart_redis", "freeze_redis", "restore_snapshot", "poison"]
        return kinds + (["hold_duckdb"] if self.engine.name == "duckdb" else [])

    def faults(self) -> Iterator[str]:
        """Every kind of fault in turn, in a new random order each round."""
        while True:
            kinds = self.kinds()
            self.rnd.shuffle(kinds)
            yield from kinds

    def fault(self, kind: str) -> None:
        self.say(f"fault: {kind}")
        getattr(self, f"_{kind}")()
        self.report.faults[kind] += 1

    def _kill_sync(self) -> None:
        """SIGKILL the running `featurehouse sync` at a random point of its run."""
        deadline = time.monotonic() + 30
        while self.sync_proc is None or self.sync_proc.poll() is not None:
            if time.monotonic() > deadline or self.stop.is_set():
                return
            self.stop.wait(0.02)
        self.stop.wait(self.rnd.uniform(0.2, 3.0))
        proc = self.sync_proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _kill_consumer(self) -> None:
        with self.consumer_lock:
            if self.consumer is not None:
                self.consumer.kill()
                self.consumer.wait()
            self.consumer = cli(self.project, self.redis.url, "stream", log=self.logs / "stream.log")

    def _restart_redis(self) -> None:
        self.redis.restart()

    def _freeze_redis(self) -> None:
        self.redis.freeze()
        self.stop.wait(self.rnd.uniform(0.3, 1.5))
        self.redis.thaw()

    def _restore_snapshot(self) -> None:
        if self.snapshot is None:
            self._take_snapshot()
            self.stop.wait(1.0)  # let the store move on from the backup
        with self.lock:
            assert self.snapshot is not None
            begin = time.monotonic()
            self.redis.restore(self.snapshot)
            self.restores.append((begin, time.monotonic()))
            self.snapshot = None
            # entries appended after the backup are gone with it (docs/reliability.md): pushes Redis
            # acknowledged then may be lost, unless a consumer had applied them already; poison
            # entries appended then no longer exist to be dead-lettered
            accepted, poison = self.at_snapshot
            self.unsure += self.accepted[accepted:]
            del self.accepted[accepted:]
            del self.poison_ids[poison:]

    def _take_snapshot(self) -> None:
        with self.lock:
            self.snapshot = self.redis.snapshot()
            self.at_snapshot = (len(self.accepted), len(self.poison_ids))

    def _poison(self) -> None:
        from featurehouse.stream.log import stream_key

        client = self.redis.client()
        try:
            with self.lock:
                entry = client.xadd(stream_key(self.view), {"r": b"\x93\x01"})  # a truncated array
                self.poison_ids.append(entry.decode())
                self.report.poison_entries += 1
        finally:
            client.close()

    def _hold_duckdb(self) -> None:
        holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                                   "print('held', flush=True); sys.stdin.read()", str(self.project / "ledger.duckdb")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert holder.stdout is not None and holder.stdin is not None
        holder.stdout.readline()  # it holds the file now (or failed to get it: then it exits)
        self.stop.wait(self.rnd.uniform(0.5, 2.0))
        holder.stdin.close()
        holder.wait(timeout=30)

    # the whole run

    def run(self, seconds: float) -> ChaosReport:
        from featurehouse import FeatureStore
        from featurehouse.online.store import RedisOnlineStore
        from featurehouse.serving.reader import OnlineReader

        started = time.monotonic()
        self.setup()
        store = FeatureStore(self.project)
        store.use_online_store(RedisOnlineStore.from_url(self.redis.url))
        self.view = store.registry.view(VIEW)
        store.close_warehouse()
        errors: list[BaseException] = []

        def guarded(loop: Callable[[], None]) -> Callable[[], None]:
            def body() -> None:
                try:
                    loop()
                except BaseException as e:  # noqa: BLE001 - reported by the run
                    errors.append(e)
                    self.stop.set()
            return body

        def writers() -> None:
            client = self.redis.client(1.0)
            while not self.stop.is_set():
                step = self.rnd.random()
                if step < 0.4:
                    self.batch_rows()
                elif step < 0.85:
                    self.push(client, self.view)
                else:
                    self.hostile(client, self.view)
                self.stop.wait(0.02)

        def sampler() -> None:
            reader = OnlineReader(store.registry, self.redis.client(0.5), refresh_s=REFRESH_S)
            while not self.stop.is_set():
                self.sample(reader)
                self.stop.wait(0.01)

        def syncer() -> None:
            """`featurehouse sync` on a schedule, back to back (the faults kill some of them)."""
            while not self.stop.is_set():
                self.sync_proc = cli(self.project, self.redis.url, "sync", log=self.logs / "sync.log")
                code = self.sync_proc.wait()
                self.report.sync_exit_codes["killed" if code == -signal.SIGKILL else code] += 1
                self.stop.wait(self.rnd.uniform(0.0, 0.5))

        def consumer_keeper() -> None:
            while not self.stop.is_set():
                with self.consumer_lock:  # else a consumer the fault just started could be replaced and left running
                    if self.consumer is not None and self.consumer.poll() is not None and not self.stop.is_set():
                        self.consumer = cli(self.project, self.redis.url, "stream", log=self.logs / "stream.log")
                self.stop.wait(0.2)

        threads = [threading.Thread(target=guarded(t), daemon=True)
                   for t in (writers, sampler, syncer, consumer_keeper)]
        for t in threads:
            t.start()
        self._take_snapshot()  # a backup to restore later
        deadline = started + seconds
        try:
            for kind in self.faults():
                if time.monotonic() >= deadline or self.stop.is_set():
                    break
                self.fault(kind)
                self.stop.wait(self.rnd.uniform(0.2, 1.0))
        finally:
            self.stop.set()
            if self.redis.frozen:
                self.redis.thaw()
            for t in threads:
                t.join(timeout=120)
            if self.sync_proc is not None and self.sync_proc.poll() is None:
                self.sync_proc.wait(timeout=120)
        if errors:
            raise errors[0]
        self.recover()
        self.check(store)
        self.report.seconds = time.monotonic() - started
        return self.report

    def recover(self) -> None:
        """The documented recovery (docs/reliability.md): drain the streams, then sync."""
        if self.consumer is not None:
            self.consumer.send_signal(signal.SIGTERM)
            try:
                self.consumer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.consumer.kill()
                self.consumer.wait()
        for _ in range(10):  # each pass re-delivers what failed, until it is applied or dead-lettered
            code = run_cli(self.project, self.redis.url, "stream", "--once", log=self.logs / "recover.log")
            assert code == 0, (self.logs / "recover.log").read_text()[-3000:]
            if self._stream_settled():
                break
        else:
            raise AssertionError("the stream did not settle after 10 `featurehouse stream --once` runs: "
                                 f"{self._stream_state()}\n{(self.logs / 'recover.log').read_text()[-4000:]}")
        code = run_cli(self.project, self.redis.url, "sync", log=self.logs / "recover.log")
        assert code == 0, (self.logs / "recover.log").read_text()[-3000:]

    def _stream_state(self) -> str:
        from featurehouse.stream.log import GROUP, stream_key

        client = self.redis.client()
        try:
            key = stream_key(self.view)
            return (f"pending {client.xpending(key, GROUP)}, groups {client.xinfo_groups(key)}, "
                    f"first pending {client.xpending_range(key, GROUP, '-', '+', 3)}")
        finally:
            client.close()

    def _stream_settled(self) -> bool:
        from featurehouse.stream.log import GROUP, stream_key

        client = self.redis.client()
        try:
            key = stream_key(self.view)
            pending = client.xpending(key, GROUP)["pending"]
            # XINFO's `lag` is approximate after a restore: look for an entry past the last delivered one
            groups = {g["name"]: g for g in client.xinfo_groups(key)}
            last = groups[GROUP.encode()]["last-delivered-id"]
            undelivered = client.xrange(key, min=b"(" + last, count=1)
            return pending == 0 and not undelivered
        finally:
            client.close()

    def check(self, store) -> None:
        from featurehouse.stream.log import dead_letter_key, landing_relation

        landing = landing_relation(self.view, self.engine.catalog_schema)
        relation = f'"{self.engine.model_schema}"."{VIEW}"'
        batch = self.raw.rows(relation)
        pushed = self.raw.rows(f'"{landing.schema}"."{landing.identifier}"')
        everything = batch + pushed
        held = {(int(r["acct_id"]), _row_key(r)) for r in everything}
        for row in self.accepted:
            key = (int(row["acct_id"]), _row_key({**row, "event_time": datetime.fromisoformat(row["event_time"])}))
            if key not in held:
                self.report.lost_pushes.append(f"acct {row['acct_id']}: {key[1]}")
        latest: dict[int, dict] = {}
        for r in everything:  # the oracle: the newest event, ties to the newest ingestion (NULL last)
            k = int(r["acct_id"])
            best = latest.get(k)
            rank = (r["event_time"], r["created_at"] or datetime.min)
            if best is None or rank > (best["event_time"], best["created_at"] or datetime.min):
                latest[k] = r
        online = store.online
        records = online.read("acct", [(k,) for k in sorted(latest)], [(self.view, self.view.version)])
        for k, record in zip(sorted(latest), records):
            self.report.entities_checked += 1
            got = record.get(self.view.versioned_name)
            want = latest[k]
            self.report.values_checked += len(FEATURES)
            if got is None:
                self.report.wrong_final.append(f"acct {k}: missing online, warehouse has {_row_key(want)}")
                continue
            have = _row_key({"event_time": got.event_time, **got.values})
            if have != _row_key(want):
                self.report.wrong_final.append(f"acct {k}: online {have} != warehouse latest {_row_key(want)}")
        client = self.redis.client()
        try:
            dead = client.xrange(dead_letter_key(self.view))
        finally:
            client.close()
        self.report.dead_letters = len(dead)
        text = [b" ".join(v for pair in fields.items() for v in pair).decode(errors="replace") for _, fields in dead]
        reasons = sum(1 for t in text if "reason" in t)
        if reasons < len(dead):
            self.report.missing_dead_letters.append(f"{len(dead) - reasons} dead letters without a reason")
        for entry in self.poison_ids:
            if not any(entry in t for t in text):
                self.report.missing_dead_letters.append(f"stream entry {entry}")

    def close(self) -> None:
        for proc in (self.consumer,):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        self.raw.close()
        self.redis.close()


@contextlib.contextmanager
def chaos(root: Path, engine: Engine, seed: int = 0, log: Callable[[str], None] | None = None) -> Iterator[Chaos]:
    run = Chaos(root, engine, seed, log)
    try:
        yield run
    finally:
        run.close()
        if engine.name == "postgres":
            _drop_pg_schemas(engine)


def _drop_pg_schemas(engine: Engine) -> None:
    import psycopg2

    pg = engine.pg or {}
    con = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], dbname=pg["dbname"])
    con.autocommit = True
    with con.cursor() as cur:
        for schema in (engine.raw_schema, engine.catalog_schema, engine.model_schema):
            cur.execute(f'drop schema if exists "{schema}" cascade')
    con.close()
