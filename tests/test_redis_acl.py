"""Redis users (featurehouse/online/acl.py, `featurehouse online acl`): on a private redis-server with the
generated ACL applied, each role does its job through featurehouse's own code, and nothing else."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import hashlib
import re
import shlex
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pytest
import redis
from click.testing import CliRunner
from redis.exceptions import NoPermissionError

from featurehouse import FeatureStore
from featurehouse.cli.main import cli
from featurehouse.clock import utc_now
from featurehouse.offline.warehouse import DuckDBWarehouse
from featurehouse.online import acl, keys
from featurehouse.online.embedded import server_binary
from featurehouse.online.store import FUNCTIONS, RedisOnlineStore
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from featurehouse.serving.definitions import PENDING as PENDING_DEFINITIONS
from featurehouse.serving.reader import OnlineReader
from featurehouse.serving.served_log import SERVED_STREAM, ServedLog
from featurehouse.stream.log import dead_letter_key, push, stream_key

PASSWORDS = {"serving": "serving-pw-1", "writer": "writer-pw-2", "push": "push-pw-3"}
ENV = {f"FH_TEST_{role.upper()}_PW": password for role, password in PASSWORDS.items()}
PASSWORD_OPTIONS = [arg for role in PASSWORDS for arg in (f"--{role}-password-env", f"FH_TEST_{role.upper()}_PW")]
USER = Entity("user", ("user_id",))
NOW = utc_now().replace(microsecond=0)
SCHEMA = pa.schema([("user_id", pa.int64()), ("event_time", pa.timestamp("us")), ("created_at", pa.timestamp("us")),
                    ("n", pa.int64()), ("label", pa.string())])
NAMES = ["txn.n", "txn.label"]
ROWS = [{"user_id": i, "event_time": NOW - timedelta(minutes=i), "created_at": NOW - timedelta(minutes=i),
         "n": i * 10, "label": f"u{i}"} for i in range(1, 6)]


def txn_view() -> FeatureView:
    return FeatureView("txn", 1, USER, Relation(None, None, "txn"), "event_time",
                       (Feature("txn", "n", "bigint", 1), Feature("txn", "label", "varchar", 1)),
                       created_at="created_at", ttl=timedelta(days=1))


def make_registry() -> Registry:
    registry = Registry(entities={"user": USER})
    registry.add(txn_view())
    return registry


# -- a private server with the generated ACL ------------------------------------------------------


@contextlib.contextmanager
def private_redis(directory: Path, *args: str) -> Iterator[Path]:
    """A redis-server of this test's own on a unix socket (never the machine's shared server)."""
    sock = directory / "redis.sock"
    proc = subprocess.Popen([server_binary(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                             "--dir", str(directory), "--save", "", "--appendonly", "no", "--daemonize", "no", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        admin = redis.Redis(unix_socket_path=str(sock))
        deadline = time.monotonic() + 10
        while True:
            try:
                admin.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"private redis-server did not start (exit {proc.poll()})") from None
                time.sleep(0.01)
        admin.close()
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def generate(tmp: Path, *args: str, env: dict[str, str] | None = None):
    """`featurehouse online acl ...`, run in a temporary directory (it writes nothing)."""
    cwd = tmp / "cwd"
    cwd.mkdir()
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(cli, ["online", "acl", *args], env=env or {}, catch_exceptions=False)
    assert list(cwd.iterdir()) == []  # nothing written
    cwd.rmdir()
    assert result.exit_code == 0, result.output
    return result


def apply(admin: redis.Redis, lines: list[str]) -> None:
    for line in lines:
        assert admin.execute_command(*shlex.split(line)) in (b"OK", "OK", True)


@dataclasses.dataclass
class Server:
    sock: Path
    admin: redis.Redis

    def url(self, role: str, prefix: str = "featurehouse") -> str:
        return f"unix://{prefix}-{role}:{PASSWORDS[role]}@{self.sock}"

    def client(self, role: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(role))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("acl")
    lines = generate(base, "--push-user", *PASSWORD_OPTIONS, env=ENV).stdout.splitlines()
    with private_redis(base) as sock:
        admin = redis.Redis(unix_socket_path=str(sock))
        apply(admin, lines)
        yield Server(sock, admin)
        admin.close()


@pytest.fixture
def fresh(server) -> Server:
    server.admin.flushall()  # the admin (the private server's default user), between tests
    server.admin.function_flush()
    return server


@pytest.fixture
def synced(fresh) -> Iterator[tuple[Server, FeatureStore]]:
    """A full sync by the writer user, from a DuckDB warehouse."""
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.load_table("txn", pa.Table.from_pylist(ROWS, schema=SCHEMA))
    store = FeatureStore.from_registry(make_registry(), warehouse)
    store.use_online_store(RedisOnlineStore.from_url(fresh.url("writer")))
    runs = store.sync(full_refresh=True)
    assert [(r.status, r.rows_written) for r in runs] == [("success", 5)]
    yield fresh, store
    store.close()


def users(admin: redis.Redis) -> set[str]:
    return {u.decode() if isinstance(u, bytes) else u for u in admin.acl_users()}


def expected(user_id: int) -> dict:
    return {"txn.n": user_id * 10, "txn.label": f"u{user_id}"}


def values(vector) -> dict:
    return {name: value.value for name, value in vector.features.items()}


# -- serving --------------------------------------------------------------------------------------


def test_the_serving_user_reads_vectors_a_writer_synced(synced):
    server, _ = synced
    reader = OnlineReader(make_registry(), server.client("serving"))
    [one] = reader.get("user", ["3"], NAMES)  # one entity: HMGET
    assert values(one) == expected(3) and {v.status for v in one.features.values()} == {"ok"}
    many = reader.get("user", ["1", "2", "5", "99"], NAMES)  # several: FCALL_RO fh_hmget_many
    assert [values(v) for v in many[:3]] == [expected(1), expected(2), expected(5)]
    assert {v.status for v in many[3].features.values()} == {"missing"}


def test_the_serving_user_logs_served_samples(synced):
    server, _ = synced
    client = server.client("serving")
    vectors = OnlineReader(make_registry(), client).get("user", ["1", "2"], NAMES)
    ServedLog(rate=1.0).append(client, vectors, "fraud@1")
    entries = server.admin.xrange(SERVED_STREAM)
    assert [fields[b"entity_id"] for _, fields in entries] == [b"1", b"2"]


FUNCTION_ARGS = ("fh_guard_batch", "1", "fh:{user:1}", "txn@1", "_t:txn@1", "9999999999999999", "1", "forged")


@pytest.mark.parametrize("command", [
    ("HSET", "fh:{user:1}", "txn@1", "forged"),
    ("HSET", "fh:active_versions", "txn", "2"),
    ("HDEL", "fh:{user:1}", "txn@1"),
    ("DEL", "fh:{user:1}"),
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("ACL", "SETUSER", "intruder", "on", ">pw", "+@all", "~*"),
    ("ACL", "LIST"),
    ("CONFIG", "GET", "requirepass"),
    ("FUNCTION", "LOAD", "REPLACE", FUNCTIONS),
    ("FUNCTION", "DELETE", "featurehouse"),
    ("FCALL", *FUNCTION_ARGS),
    ("EVAL", "return redis.call('DEL', KEYS[1])", "1", "fh:{user:1}"),
    ("XADD", "fh:stream:{txn@1}", "*", "r", "forged"),
    ("XADD", "fh:dead:{txn@1}", "*", "r", "forged"),
    ("XRANGE", SERVED_STREAM, "-", "+"),
    ("KEYS", "*"),
    ("SCAN", "0"),
    ("GET", "fh:store_id"),
    ("SET", "fh:audit_key", "forged"),
])
def test_the_serving_user_is_refused_everything_else(synced, command):
    server, _ = synced
    before = {k: server.admin.dump(k) for k in server.admin.scan_iter()}
    with pytest.raises(NoPermissionError):
        server.client("serving").execute_command(*command)
    assert {k: server.admin.dump(k) for k in server.admin.scan_iter()} == before
    assert "intruder" not in users(server.admin)


def test_the_serving_user_cannot_write_through_the_read_only_function_call(synced):
    server, _ = synced
    with pytest.raises(redis.ResponseError, match="write"):  # a function without no-writes is refused to FCALL_RO
        server.client("serving").execute_command("FCALL_RO", *FUNCTION_ARGS)
    assert values(OnlineReader(make_registry(), server.client("serving")).get("user", ["1"], NAMES)[0]) == expected(1)


def test_batch_reads_need_the_library_a_writer_loaded(synced):
    """The serving user never loads featurehouse's functions: a store whose library is gone (flushed, or a
    restart without persistence) serves one entity at a time until a writer process opens it again."""
    server, _ = synced
    server.admin.function_flush()
    reader = OnlineReader(make_registry(), server.client("serving"))
    assert values(reader.get("user", ["1"], NAMES)[0]) == expected(1)  # HMGET needs no library
    with pytest.raises(NoPermissionError):  # the reader's fallback, FUNCTION LOAD, is refused
        reader.get("user", ["1", "2"], NAMES)
    RedisOnlineStore.from_url(server.url("writer")).close()  # any writer process loads it on opening the store
    assert [values(v) for v in reader.get("user", ["1", "2"], NAMES)] == [expected(1), expected(2)]


def _serve_config(url: str):
    from featurehouse.serving.app import ServeConfig

    settings = {"redis_url": url, "log_sample_rate": 1.0}
    names = {f.name for f in dataclasses.fields(ServeConfig)}
    if "auth" in names:
        settings["auth"] = "none"  # tokens are their own tests: this one is about the Redis user
    return ServeConfig(**settings)


def test_the_serving_app_runs_as_the_serving_user(synced):
    from starlette.testclient import TestClient

    from featurehouse.serving.app import create_app

    server, _ = synced
    app = create_app(make_registry(), _serve_config(server.url("serving")))
    with TestClient(app) as http:
        one = http.get("/v1/features/user/4?names=txn.n,txn.label")
        assert one.status_code == 200, one.text
        assert {n: f["value"] for n, f in one.json()["features"].items()} == expected(4)
        batch = http.post("/v1/features/user:batchGet", json={"ids": [1, 2, 3], "names": NAMES})
        assert batch.status_code == 200, batch.text
        assert [v["features"]["txn.n"]["value"] for v in batch.json()["vectors"]] == [10, 20, 30]
        assert http.get("/readyz").status_code == 200
        assert http.get("/metrics").status_code == 200
        assert http.get("/v1/feature-definitions").status_code == 200
    assert server.admin.xlen(SERVED_STREAM) == 4  # flushed at shutdown


def test_the_definitions_api_records_pending_definitions_as_the_serving_user(synced):
    from starlette.testclient import TestClient

    from featurehouse.serving.app import create_app

    server, _ = synced
    definition = {"name": "device", "entity": "user", "version": 1, "schema": {"os": "varchar"}}
    with TestClient(create_app(make_registry(), _serve_config(server.url("serving")))) as http:
        posted = http.post("/v1/feature-definitions", json=definition)
        assert posted.status_code == 201, posted.text
        assert http.post("/v1/feature-definitions", json=definition).status_code == 200
    assert server.admin.hexists(PENDING_DEFINITIONS, "device@1")


def test_featurehouse_serve_can_open_the_store_as_the_serving_user(synced):
    """`featurehouse serve` opens the store to check it before starting workers: without FUNCTION LOAD (the writer
    loads the library) that open must work."""
    server, _ = synced
    RedisOnlineStore.from_url(server.url("serving")).ping()


# -- writer ---------------------------------------------------------------------------------------


def test_the_writer_syncs_consumes_the_stream_forgets_and_expires(synced):
    server, store = synced
    again = store.sync()  # incremental: nothing new
    assert [(r.status, r.rows_written) for r in again] == [("success", 0)]
    accepted = store.push("txn", [{"user_id": 1, "event_time": (NOW + timedelta(seconds=1)).isoformat(), "n": 11,
                                   "label": "pushed"}])
    assert accepted.accepted == 1
    consumer = store.stream_consumer()
    assert consumer.run_once() == 1 and consumer.stats.written == 1
    reader = OnlineReader(make_registry(), server.client("serving"))
    assert values(reader.get("user", ["1"], NAMES)[0]) == {"txn.n": 11, "txn.label": "pushed"}
    assert store.forget("user", (2,)).online_keys_deleted == 1
    assert not server.admin.exists("fh:{user:2}")
    expired = store.retention(now=NOW + timedelta(days=1, minutes=-3.5))  # users 4 and 5 are past the TTL then
    assert expired == {"txn@1": 2}
    assert {v.status for v in reader.get("user", ["5"], NAMES)[0].features.values()} == {"missing"}
    assert values(reader.get("user", ["3"], NAMES)[0]) == expected(3)


# -- push -----------------------------------------------------------------------------------------


def test_the_push_user_appends_rows_and_dead_letters_only(synced):
    server, _ = synced
    client = server.client("push")
    view = txn_view()
    result = push(client, view, [{"user_id": 7, "event_time": NOW.isoformat(), "n": 1, "label": "p"},
                                 {"user_id": 7, "event_time": NOW.isoformat(), "n": "not a number"}])
    assert (result.accepted, len(result.rejected)) == (1, 1)
    assert server.admin.xlen(stream_key(view)) == 1 and server.admin.xlen(dead_letter_key(view)) == 1
    for command in (("HMGET", "fh:{user:1}", "txn@1"), ("HSET", "fh:{user:1}", "txn@1", "x"),
                    ("XADD", SERVED_STREAM, "*", "a", "b"), ("XRANGE", stream_key(view), "-", "+"),
                    ("XREADGROUP", "GROUP", "featurehouse", "c", "STREAMS", stream_key(view), ">"),
                    ("DEL", stream_key(view)), ("FUNCTION", "LOAD", "REPLACE", FUNCTIONS), ("FLUSHALL",)):
        with pytest.raises(NoPermissionError):
            client.execute_command(*command)
    assert server.admin.xlen(stream_key(view)) == 1


# -- no role administers the server -------------------------------------------------------------


@pytest.mark.parametrize("role", ["serving", "writer", "push"])
@pytest.mark.parametrize("command", [
    ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "appendonly", "no"), ("ACL", "LIST"),
    ("ACL", "SETUSER", "intruder", "on", "nopass", "+@all", "~*"), ("ACL", "DELUSER", "featurehouse-serving"),
    ("KEYS", "fh:*"), ("FUNCTION", "FLUSH"), ("FUNCTION", "DELETE", "featurehouse"), ("SET", "someone:else", "x"),
    ("GET", "someone:else"), ("EVAL", "return 1", "0"), ("CLIENT", "LIST"),
])
def test_no_role_runs_administrative_commands(synced, role, command):
    server, _ = synced
    server.admin.set("someone:else", "theirs")
    with pytest.raises(NoPermissionError):
        server.client(role).execute_command(*command)
    assert server.admin.get("someone:else") == b"theirs" and server.admin.exists("fh:{user:1}")
    assert server.admin.function_list(library="featurehouse")
    assert "intruder" not in users(server.admin) and "featurehouse-serving" in users(server.admin)


@pytest.mark.parametrize("role", ["serving", "writer", "push"])
@pytest.mark.parametrize("command", [("SHUTDOWN",), ("DEBUG", "SLEEP", "0"), ("MODULE", "LIST"), ("MONITOR",),
                                     ("REPLICAOF", "NO", "ONE"), ("SAVE",), ("BGREWRITEAOF",), ("SCRIPT", "FLUSH"),
                                     ("CLIENT", "KILL", "TYPE", "normal"), ("SUBSCRIBE", "x"), ("PUBLISH", "x", "y"),
                                     ("SELECT", "1"), ("SWAPDB", "0", "1"), ("MIGRATE", "h", "1", "k", "0", "1")])
def test_no_role_may_stop_or_reconfigure_the_server(server, role, command):
    """Asked without running them (ACL DRYRUN): running them would stop or change the test's server."""
    verdict = server.admin.execute_command("ACL", "DRYRUN", f"featurehouse-{role}", *command)
    assert verdict != b"OK" and b"no permissions" in verdict


# -- the generated ACL itself -------------------------------------------------------------------


def test_only_password_hashes_are_printed_unless_generated(tmp_path):
    quiet = generate(tmp_path, *PASSWORD_OPTIONS, "--push-user", env=ENV)
    assert quiet.stderr == ""
    for password in PASSWORDS.values():
        assert password not in quiet.stdout
        assert f'"#{hashlib.sha256(password.encode()).hexdigest()}"' in quiet.stdout


def test_generated_passwords_are_printed_once_and_work(server, tmp_path):
    out = generate(tmp_path, "--prefix", "gen")
    passwords = dict(re.findall(r"^(gen-\w+): generated password.*: (\S+)$", out.stderr, re.M))
    assert set(passwords) == {"gen-serving", "gen-writer"}
    for password in passwords.values():
        assert password not in out.stdout and out.stderr.count(password) == 1
        assert f"#{hashlib.sha256(password.encode()).hexdigest()}" in out.stdout
    try:
        apply(server.admin, out.stdout.splitlines())
        assert redis.Redis.from_url(f"unix://gen-serving:{passwords['gen-serving']}@{server.sock}").ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(f"unix://gen-serving:{passwords['gen-writer']}@{server.sock}").ping()
    finally:
        server.admin.acl_deluser("gen-serving", "gen-writer")


def test_a_password_variable_that_is_unset_is_an_error_naming_it(tmp_path):
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(cli, ["online", "acl", "--writer-password-env", "FH_TEST_UNSET_PW"], env={})
    assert result.exit_code == 2 and "FH_TEST_UNSET_PW" in result.stderr and result.stdout == ""


def test_the_setuser_commands_pipe_into_redis_cli(server, tmp_path):
    """As docs/security.md applies them: the printed lines through redis-cli (quoting survives), and again."""
    cli_binary = shutil.which("redis-cli")
    if cli_binary is None:
        pytest.skip("redis-cli is not on PATH")
    text = generate(tmp_path, "--push-user", *PASSWORD_OPTIONS, env=ENV).stdout
    done = subprocess.run([cli_binary, "-s", str(server.sock)], input=text, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["OK", "OK", "OK"], done.stdout
    rules = server.admin.acl_getuser("featurehouse-serving")
    assert "function|load" not in str(rules) and "%R~fh:{*" in str(rules)
    assert server.client("serving").ping()


def test_an_acl_file_loads_and_holds_the_same_users(tmp_path):
    out = generate(tmp_path, "--format", "acl-file", "--push-user", *PASSWORD_OPTIONS, env=ENV).stdout
    assert all(line.startswith("user featurehouse-") for line in out.splitlines())
    (tmp_path / "users.acl").write_text(out)
    with private_redis(tmp_path, "--aclfile", str(tmp_path / "users.acl")) as sock:
        loaded = Server(sock, redis.Redis(unix_socket_path=str(sock)))
        assert loaded.client("serving").hmget("fh:{user:1}", ["txn@1"]) == [None]
        with pytest.raises(NoPermissionError):
            loaded.client("serving").hset("fh:{user:1}", "txn@1", "x")
        RedisOnlineStore.from_url(loaded.url("writer")).close()  # FUNCTION LOAD
        assert loaded.client("push").xadd("fh:stream:{txn@1}", {"r": "x"})


@contextlib.contextmanager
def extra_users(server: Server, tmp: Path, prefix: str, *options: str) -> Iterator[None]:
    """Users made with other options, beside the module's, removed afterwards."""
    apply(server.admin, generate(tmp, "--prefix", prefix, *options, *PASSWORD_OPTIONS[:4], env=ENV).stdout.splitlines())
    try:
        yield
    finally:
        server.admin.acl_deluser(f"{prefix}-serving", f"{prefix}-writer")


def test_without_the_definitions_api_serving_writes_only_the_sample_and_audit_streams(server, tmp_path):
    def may(user: str, *command: str) -> bool:
        return server.admin.execute_command("ACL", "DRYRUN", user, *command) == b"OK"

    with extra_users(server, tmp_path, "nodef", "--no-definitions-api"):
        assert may("featurehouse-serving", "HSET", PENDING_DEFINITIONS, "a", "b")
        assert not may("nodef-serving", "HSET", PENDING_DEFINITIONS, "a", "b")
        assert not may("nodef-serving", "HGETALL", PENDING_DEFINITIONS)
        assert may("nodef-serving", "XADD", SERVED_STREAM, "*", "a", "b")
        assert may("nodef-serving", "HMGET", "fh:{user:1}", "txn@1")


def test_serving_push_lets_serving_append_pushed_rows_only(fresh, tmp_path):
    view = txn_view()
    rows = [{"user_id": 8, "event_time": NOW.isoformat(), "n": 1, "label": "p"}]
    with pytest.raises(NoPermissionError):
        push(fresh.client("serving"), view, rows)
    with extra_users(fresh, tmp_path, "sp", "--serving-push"):
        client = redis.Redis.from_url(f"unix://sp-serving:{PASSWORDS['serving']}@{fresh.sock}")
        assert push(client, view, rows).accepted == 1
        with pytest.raises(NoPermissionError):
            client.xreadgroup("featurehouse", "c", {stream_key(view): ">"})
        with pytest.raises(NoPermissionError):
            client.hset("fh:{user:8}", "txn@1", "x")
    assert fresh.admin.xlen(stream_key(view)) == 1


def test_a_database_other_than_0_needs_allow_select(fresh, tmp_path):
    with extra_users(fresh, tmp_path, "sel", "--allow-select"):
        url = f"unix://sel-writer:{PASSWORDS['writer']}@{fresh.sock}?db=1"
        store = RedisOnlineStore.from_url(url)
        store.set_active_version("txn", 1)
        store.close()
        assert redis.Redis(unix_socket_path=str(fresh.sock), db=1).hget("fh:active_versions", "txn") == b"1"
    with pytest.raises(redis.RedisError):  # SELECT refused when the URL names database 1
        redis.Redis.from_url(f"unix://featurehouse-writer:{PASSWORDS['writer']}@{fresh.sock}?db=1").ping()


def test_client_setinfo_is_granted_only_when_asked(server, tmp_path):
    assert "client|setinfo" not in generate(tmp_path, *PASSWORD_OPTIONS[:4], env=ENV).stdout
    line = generate(tmp_path, "--client-setinfo", *PASSWORD_OPTIONS[:4], env=ENV).stdout.splitlines()[0]
    assert '"+client|setinfo"' in line
    line = line.replace("featurehouse-serving", "setinfo-serving", 1)
    version = tuple(int(x) for x in server.admin.info("server")["redis_version"].split(".")[:2])
    if version < (7, 2):  # Redis 7.0 does not know the subcommand: the option's help says so
        with pytest.raises(redis.ResponseError, match="client\\|setinfo"):
            server.admin.execute_command(*shlex.split(line))
    else:
        apply(server.admin, [line])
        server.admin.acl_deluser("setinfo-serving")


# -- the ACL follows the code ---------------------------------------------------------------------


def _role(name: str) -> acl.Role:
    return {r.role: r for r in acl.roles(push=True)}[name]


def _matches(patterns, key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, p.split("~", 1)[1]) for p in patterns)


def test_the_acl_names_the_keys_featurehouse_uses():
    assert (acl.SERVED_STREAM, acl.PENDING_DEFINITIONS) == (SERVED_STREAM, PENDING_DEFINITIONS)
    view = txn_view()
    assert fnmatch.fnmatchcase(keys.entity_key("card_merchant", (7, "m|{x}")), acl.ENTITY_HASHES)
    assert fnmatch.fnmatchcase(stream_key(view), acl.PUSH_STREAMS)
    assert fnmatch.fnmatchcase(dead_letter_key(view), acl.DEAD_LETTERS)
    serving, push_user = _role("serving"), _role("push")
    assert not _matches(serving.key_patterns, stream_key(view)) and not _matches(serving.key_patterns, "fh:store_id")
    assert not _matches(push_user.key_patterns, keys.entity_key("user", (1,)))


def test_every_key_constant_is_classified_for_serving():
    """A key added to online/keys.py must be granted to serving in acl.py, or listed as not served."""
    serving, writer = _role("serving"), _role("writer")
    constants = {name: value for name, value in vars(keys).items()
                 if isinstance(value, str) and value.startswith(f"{keys.PREFIX}:")}
    assert constants  # the scan finds the state hashes
    for name, key in constants.items():
        assert _matches(writer.key_patterns, key), f"{name} ({key}) is not among the writer's keys"
        assert _matches(serving.key_patterns, key) or key in acl.NOT_SERVED, \
            f"keys.{name} ({key}): grant it to serving in featurehouse/online/acl.py, or add it to NOT_SERVED"


def test_the_documented_rules_are_the_generated_ones():
    """docs/security.md, "Redis users (ACL)", lists every user's rules: they must be what is generated."""
    text = (PACKAGE.parent / "docs" / "security.md").read_text(encoding="utf-8")
    section = text.split("## Redis users (ACL)", 1)[1].split("\n## ", 1)[0]
    block = section.split("Every user starts from", 1)[1].split("```", 2)[1]
    documented: dict[str, set[str]] = {}
    user = ""
    for line in block.splitlines():
        if line.strip():
            if not line.startswith(" "):
                user, line = line.split(None, 1)
            documented.setdefault(user, set()).update(line.split())
    assert documented == {r.user: set(r.rules()) - {"resetchannels", "-@all"} for r in acl.roles(push=True)}


_CALL = re.compile(r"\b(?:client|pipe|online_client)\.([a-z_]+)\(")
# commands handed to the cluster helpers as (key, ("HMGET", key, ...)) or on_node(client, key, ("HMGET", ...))
_ROUTED = re.compile(r', \("([A-Z]+)", ')
_METHOD_COMMANDS = {"scan_iter": "scan", "xpending_range": "xpending", "xinfo_groups": "xinfo|groups",
                    "xgroup_create": "xgroup|create", "function_load": "function|load", "delete": "del"}
_NOT_COMMANDS = {"pipeline", "execute", "close", "aclose", "set_retry", "keyslot",  # keyslot: computed by redis-py
                 "get_node_from_key", "execute_command"}  # routing: the commands they carry are _ROUTED
PACKAGE = Path(__file__).resolve().parents[1] / "featurehouse"
SERVING_ONLY = ("serving/app.py", "access/http.py", "serving/definitions.py")  # code only serve workers run
SERVING_FILES = (*SERVING_ONLY, "serving/reader.py", "serving/served_log.py")


def _commands_called(path: Path) -> dict[str, str]:
    """Redis commands a module sends through a client or pipeline: command -> the method spelling."""
    found = {}
    text = path.read_text(encoding="utf-8")
    for method in _CALL.findall(text):
        if method not in _NOT_COMMANDS:
            found[_METHOD_COMMANDS.get(method, method)] = method
    for command in _ROUTED.findall(text):
        found[command.lower()] = command
    return found


def test_the_writer_may_run_every_command_featurehouse_sends():
    """A Redis command newly used anywhere in featurehouse must be granted (or the ACL breaks that path)."""
    writer = _role("writer")
    skipped = {PACKAGE / "online" / "embedded.py", PACKAGE / "online" / "local_cluster.py",  # their own servers
               *(PACKAGE / name for name in SERVING_ONLY)}
    scanned = [p for p in PACKAGE.rglob("*.py") if p not in skipped]
    missing = {f"{cmd} ({path.relative_to(PACKAGE)})" for path in scanned
               for cmd in _commands_called(path) if cmd not in writer.commands}
    assert not missing, f"not granted to the writer in featurehouse/online/acl.py: {sorted(missing)}"
    assert "hmget" in writer.commands and "function|load" in writer.commands  # the scan is not vacuous
    routed = {cmd for path in scanned for cmd, spelled in _commands_called(path).items() if spelled.isupper()}
    assert {"hmget", "fcall"} <= routed  # the cluster paths' commands are seen too


def test_serving_may_run_every_command_its_modules_send():
    serving = _role("serving")
    used: set[str] = set()
    for name in SERVING_FILES:
        if (PACKAGE / name).exists():
            used |= set(_commands_called(PACKAGE / name))
    assert {"hmget", "fcall_ro", "hgetall", "xadd"} <= used
    # the reader's fallback when the library is missing is the writer's job (test_batch_reads_need_...)
    assert used - serving.commands == {"function|load"}, f"not granted to serving: {sorted(used - serving.commands)}"


# -- Redis Cluster ------------------------------------------------------------------------------


@pytest.fixture
def acl_cluster(redis_cluster_url, tmp_path):
    """The session's three-node cluster with the users (--cluster) on every node: ACLs are per node."""
    lines = generate(tmp_path, "--cluster", "--prefix", "fhc", *PASSWORD_OPTIONS[:4], env=ENV).stdout.splitlines()
    host, port = redis_cluster_url.rsplit("/", 1)[1].split(":")
    admin = redis.RedisCluster(host=host, port=int(port))
    nodes = [redis.Redis(host=n.host, port=n.port) for n in admin.get_primaries()]
    for node in nodes:
        apply(node, lines)
    try:
        yield f"{host}:{port}", admin
    finally:
        for key in admin.scan_iter(match="fh:{user:*"):
            admin.delete(key)
        for node in nodes:
            node.acl_deluser("fhc-serving", "fhc-writer")
            node.close()
        admin.close()


def test_both_users_work_on_a_redis_cluster(acl_cluster):
    address, _ = acl_cluster
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.load_table("txn", pa.Table.from_pylist(ROWS, schema=SCHEMA))
    store = FeatureStore.from_registry(make_registry(), warehouse)
    store.use_online_store(RedisOnlineStore.from_url(f"redis+cluster://fhc-writer:{PASSWORDS['writer']}@{address}"))
    try:
        assert [(r.status, r.rows_written) for r in store.sync(full_refresh=True)] == [("success", 5)]
        serving = redis.RedisCluster.from_url(f"redis://fhc-serving:{PASSWORDS['serving']}@{address}")
        vectors = OnlineReader(make_registry(), serving).get("user", ["1", "2", "3"], NAMES)
        assert [values(v) for v in vectors] == [expected(1), expected(2), expected(3)]
        with pytest.raises(NoPermissionError):
            serving.hset("fh:{user:1}", "txn@1", "forged")
        serving.close()
    finally:
        store.close()
