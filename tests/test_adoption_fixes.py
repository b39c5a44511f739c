"""Findings of a new-user trial, each held by a test that fails without its fix:

6. a pushed row that leaves features out is refused (HTTP 422, the SDK's and CLI's dead letters), unless
   the view declares `partial_push: true`;
7a. an id that cannot be a key of its integer key column is a 422 (HTTP, batchGet) / InvalidRequest (SDK);
7b. a target the profile does not have is exit 2 naming it and the profile's targets;
7c. `featurehouse serve` says "serving on" once a worker answers, not before;
8. ServingClient: kept-alive connections, timeouts, bounded retries of reads, bearer tokens.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from featurehouse import FeatureStore
from featurehouse.cli.main import cli
from featurehouse.errors import InvalidRequest, ProjectError, UnknownFeature
from featurehouse.offline.warehouse import DuckDBWarehouse
from featurehouse.online.store import OnlineRow, RedisOnlineStore
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.client import ServingClient, ServingRefused, ServingUnavailable
from featurehouse.serving.vectors import FeatureValue, FeatureVector, utcnow
from featurehouse.stream.log import dead_letter_key
from featurehouse.stream.rows import InvalidRow, MissingFeatures, validate

USER = Entity("user", ("user_id",))
PAIR = Entity("card_merchant", ("card_id", "merchant_id"))
LOOSE = Entity("device", ("device_id",))  # its views disagree on the key's type: not judged


def typed_registry() -> Registry:
    r = Registry(entities={"user": USER, "card_merchant": PAIR, "device": LOOSE})
    r.add(FeatureView("txn", 1, USER, Relation(None, None, "txn"), "event_time",
                      (Feature("txn", "count_1h", "bigint", 1), Feature("txn", "amount", "double", 1)),
                      key_types=("BIGINT",)))
    r.add(FeatureView("txn", 2, USER, Relation(None, None, "txn_v2"), "event_time",
                      (Feature("txn", "count_1h", "bigint", 2),), key_types=("integer",)))
    r.add(FeatureView("clicks", 1, USER, Relation(None, None, "clicks"), "event_time",
                      (Feature("clicks", "n", "bigint", 1), Feature("clicks", "last_page", "varchar", 1)),
                      key_types=("int8",), partial_push=True))
    r.add(FeatureView("pair", 1, PAIR, Relation(None, None, "pair"), "event_time",
                      (Feature("pair", "n", "bigint", 1),), key_types=("bigint", "varchar")))
    r.add(FeatureView("dev_a", 1, LOOSE, Relation(None, None, "dev_a"), "event_time",
                      (Feature("dev_a", "x", "bigint", 1),), key_types=("bigint",)))
    r.add(FeatureView("dev_b", 1, LOOSE, Relation(None, None, "dev_b"), "event_time",
                      (Feature("dev_b", "y", "bigint", 1),), key_types=("varchar",)))
    return r


@pytest.fixture
def online(redis_url):
    store = RedisOnlineStore.from_url(redis_url)
    store.client.flushdb()
    reg = typed_registry()
    now = utcnow()
    store.write(reg.view("txn"), [OnlineRow((1,), now - timedelta(seconds=30), None, (3, 12.5))])
    store.write(reg.view("pair"), [OnlineRow((7, "m1"), now, None, (42,))])
    store.write(reg.view("dev_a"), [OnlineRow(("abc",), now, None, (5,))])
    yield store
    store.close()


@contextlib.contextmanager
def app_client(redis_url: str, auth: str = "none"):
    app = create_app(typed_registry(), ServeConfig(auth=auth, push=True, redis_url=redis_url, max_ids=50))
    app.state.reader.refresh_s = 0
    with TestClient(app) as c:
        yield c


@pytest.fixture
def api(online, redis_url):
    with app_client(redis_url) as c:
        yield c


def sdk_store(redis_url: str) -> FeatureStore:
    store = FeatureStore.from_registry(typed_registry(), DuckDBWarehouse(":memory:"))
    store.use_online_store(RedisOnlineStore.from_url(redis_url))
    store.log_sample_rate = 0.0
    return store


def row(user=5, **values) -> dict:
    return {"user_id": user, "event_time": (utcnow() - timedelta(minutes=1)).isoformat(), **values}


# -- 6. pushed rows carry every feature, unless the view takes partial rows -------------------------


def test_a_pushed_row_missing_features_is_a_422_naming_the_row_and_the_fields(api, online):
    r = api.post("/v1/push/txn", json=[row(count_1h=1, amount=2.0), row(count_1h=1), row(amount=None)])
    assert r.status_code == 422, r.text
    problems = r.json()["detail"]
    assert [(p["row"], p["field"], p["missing"]) for p in problems] == [(1, "amount", ["amount"]),
                                                                       (2, "count_1h", ["count_1h"])]
    assert "lacks feature(s) amount" in problems[0]["detail"] and "partial_push" in problems[0]["detail"]
    assert online.client.xlen("fh:stream:{txn@1}") == 0  # one bad row rejects the request
    # null is a value (NULL): a row that says so for every feature is taken
    assert api.post("/v1/push/txn", json=[row(count_1h=None, amount=None)]).status_code == 202


def test_the_sdk_push_parks_a_row_missing_features_in_the_dead_letters_naming_them(online, redis_url):
    store = sdk_store(redis_url)
    result = store.push("txn", [row(count_1h=1, amount=1.0), row(user=6)])
    assert result.accepted == 1
    [(number, reason)] = result.rejected
    assert number == 1 and "lacks feature(s) count_1h, amount" in reason
    [(_, fields)] = online.client.xrange(dead_letter_key(typed_registry().view("txn")))
    assert b"count_1h, amount" in fields[b"reason"] and json.loads(fields[b"row"])["user_id"] == 6


def test_a_view_with_partial_push_takes_rows_without_some_features_as_null():
    clicks = typed_registry().view("clicks")
    ok = validate(clicks, row(n=4))
    assert ok.values == (4, None)
    with pytest.raises(MissingFeatures) as e:
        validate(typed_registry().view("txn"), row(count_1h=4))
    assert e.value.missing == ("amount",) and isinstance(e.value, InvalidRow)


def test_the_openapi_row_schema_requires_features_unless_the_view_takes_partial_rows(api):
    paths = api.get("/openapi.json").json()["paths"]

    def schema(path):
        return paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]["items"]

    assert schema("/v1/push/txn")["required"] == ["user_id", "event_time", "count_1h", "amount"]
    assert schema("/v1/push/clicks")["required"] == ["user_id", "event_time"]
    assert "or absent" in schema("/v1/push/clicks")["properties"]["n"]["description"]
    assert "absent" not in schema("/v1/push/txn")["properties"]["amount"]["description"]


def test_partial_push_is_read_from_meta_and_must_be_a_flag():
    from featurehouse.errors import InvalidFeatureMetadata
    from featurehouse.registry.manifest import view_from_node

    node = {"name": "clicks", "columns": {c: {"name": c, "data_type": t} for c, t in
                                          [("user_id", "bigint"), ("event_time", "timestamp"), ("n", "bigint")]}}
    block = {"entity": "user", "event_time": "event_time"}
    assert view_from_node(node, block, {"user": USER}).partial_push is False
    assert view_from_node(node, {**block, "partial_push": True}, {"user": USER}).partial_push is True
    with pytest.raises(InvalidFeatureMetadata, match="partial_push: must be true or false"):
        view_from_node(node, {**block, "partial_push": "yes"}, {"user": USER})


# -- 7a. an id that cannot be a key of its type is a 422 --------------------------------------------


@pytest.mark.parametrize("key, says", [
    ("abc", "'abc' is not an integer"),
    ("042", "'042' is not written plainly (write 42)"),
    ("4.2", "'4.2' is not an integer"),
    (str(2**70), f"{2**70} is outside the range of BIGINT"),
])
def test_an_id_that_cannot_be_an_integer_key_is_a_422_naming_column_type_and_value(api, key, says):
    r = api.get(f"/v1/features/user/{key}", params={"names": "txn.count_1h"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"entity 'user': key column 'user_id' is BIGINT, and {says}"
    batch = api.post("/v1/features/user:batchGet", json={"ids": ["1", key], "names": ["txn.count_1h"]})
    assert batch.status_code == 422 and "key column 'user_id'" in batch.json()["detail"]


def test_integer_ids_and_untyped_or_disagreeing_key_columns_are_served_as_before(api):
    assert api.get("/v1/features/user/1?names=txn.count_1h").json()["features"]["txn.count_1h"]["value"] == 3
    assert api.get("/v1/features/user/-9?names=txn.count_1h").json()["features"]["txn.count_1h"]["status"] == "missing"
    assert api.post("/v1/features/user:batchGet", json={"ids": [1, "2"], "names": ["txn.count_1h"]}).status_code == 200
    # device_id is bigint in one view and varchar in another: not judged
    assert api.get("/v1/features/device/abc?names=dev_a.x").json()["features"]["dev_a.x"]["value"] == 5
    # a composite key: only its integer column is judged
    assert api.get("/v1/features/card_merchant/card_id=7;merchant_id=m1?names=pair.n").json()[
        "features"]["pair.n"]["value"] == 42
    bad = api.get("/v1/features/card_merchant/card_id=x;merchant_id=m1?names=pair.n")
    assert bad.status_code == 422 and "key column 'card_id' is bigint, and 'x' is not an integer" in bad.json()["detail"]


def test_the_in_process_reader_refuses_the_same_ids(online, redis_url):
    store = sdk_store(redis_url)
    try:
        assert store.online_features("user", ["1"], ["txn.count_1h"])[0].features["txn.count_1h"].value == 3
        with pytest.raises(InvalidRequest, match="key column 'user_id' is BIGINT, and 'abc' is not an integer"):
            store.online_features("user", ["1", "abc"], ["txn.count_1h"])
    finally:
        store.close()


def test_the_key_type_spellings_serving_knows_are_featurehouse_types_own():
    """Serving workers do not import featurehouse.types (pyarrow, sqlglot): vectors.py repeats its answers
    for the common spellings, and its canonical_integer; they must not drift apart."""
    from featurehouse.serving import vectors
    from featurehouse.types import Family, canonical_integer, logical

    for spelling, (bits, signed) in vectors._INTEGER_SPELLINGS.items():
        declared = logical(spelling)
        assert (declared.family, declared.bits, declared.signed) == (Family.INTEGER, bits, signed), spelling
        assert vectors.integer_type(spelling.upper()) == (bits, signed)
    for spelling in vectors._TEXT_SPELLINGS:
        assert logical(spelling).family is not Family.INTEGER, spelling
        assert logical(f"{spelling}(64)").family is not Family.INTEGER, spelling
        assert vectors.integer_type(f"{spelling.upper()}(64)") is None
    for spelling in ("decimal(18,0)", "double", "timestamp", "uint64", "Int64", "bigserial"):  # asked of logical
        expected = logical(spelling)
        got = vectors.integer_type(spelling)
        assert (got is not None) == (expected.family is Family.INTEGER), spelling
    for text in ("0", "-0", "+7", "007", "-007", " 42 ", "4 2", "", "-", "+", "1e3", "٣", "12345678901234567890123",
                 "-12", "abc", "0x1f", " -0 "):
        assert vectors.plain_integer(text) == canonical_integer(text), text


def test_a_serving_worker_judges_common_key_types_without_the_warehouse_libraries(tmp_path, embedded_redis):
    from featurehouse.registry.snapshot import save_snapshot

    snapshot = save_snapshot(typed_registry(), tmp_path / "registry.pickle")
    script = ("import sys, featurehouse.serving.asgi as a; assert a.app is not None; "
              "from featurehouse.serving.vectors import integer_keys, parse_ids; "
              "from featurehouse.serving.asgi import serving_registry; r = serving_registry(); "
              "assert set(integer_keys(r, 'user')) == {'user_id'} and set(integer_keys(r, 'card_merchant')) == {'card_id'}; "
              "assert integer_keys(r, 'device') == {}; parse_ids(r, 'user', ['1']); "
              "print(sorted(m for m in ('pyarrow', 'sqlglot', 'featurehouse.types') if m in sys.modules))")
    env = {"PATH": "/usr/bin:/bin", "FEATUREHOUSE_SERVING_WORKER": "1", "FEATUREHOUSE_REGISTRY_SNAPSHOT": str(snapshot),
           "FEATUREHOUSE_REDIS_URL": embedded_redis.url}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- 7b. a target the profile does not have ----------------------------------------------------------


def empty_project(root: Path) -> Path:
    """A dbt project with no feature views yet (a new user's first steps): one plain model."""
    project = root / "fresh"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: fresh\nversion: '1.0'\nconfig-version: 2\nprofile: fresh\n")
    (project / "profiles.yml").write_text("fresh:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: fresh.duckdb}\n"
                                          "    prod: {type: duckdb, path: prod.duckdb}\n")
    (project / "models" / "plain.sql").write_text("select 1 as id\n")
    return project


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_an_unknown_target_is_exit_2_naming_it_and_the_profiles_targets(tmp_path):
    project = empty_project(tmp_path)
    run = CliRunner()
    first = run.invoke(cli, ["--project-dir", str(project), "features", "list"], catch_exceptions=False)
    assert first.exit_code == 0 and "0 features" in first.output, first.output
    # the manifest is fresh and holds no view: nothing needed a connection, and "nope" went unnoticed
    result = run.invoke(cli, ["--project-dir", str(project), "--target", "nope", "features", "list"],
                        catch_exceptions=False)
    one_line_error(result, "target 'nope' not found in profile 'fresh' (targets: dev, prod)")
    env = run.invoke(cli, ["--project-dir", str(project), "features", "list"], env={"FEATUREHOUSE_TARGET": "nope"},
                     catch_exceptions=False)
    one_line_error(env, "target 'nope'")
    # a project file changed: dbt would refuse the target in several lines; it is refused first, in one
    (project / "models" / "plain.sql").write_text("select 2 as id\n")
    os.utime(project / "models" / "plain.sql", (time.time() + 5, time.time() + 5))
    stale = run.invoke(cli, ["--project-dir", str(project), "--target", "nope", "features", "list"],
                       catch_exceptions=False)
    one_line_error(stale, "target 'nope' not found", "(targets: dev, prod)")
    assert run.invoke(cli, ["--project-dir", str(project), "--target", "prod", "features", "list"]).exit_code == 0


def test_dbt_itself_refuses_an_unknown_target(tmp_path):
    """What the check stands in for: dbt would not have run with it either."""
    from dbt.cli.main import dbtRunner

    project = empty_project(tmp_path)
    with contextlib.chdir(project):
        result = dbtRunner().invoke(["--quiet", "parse", "--project-dir", str(project), "--profiles-dir", str(project),
                                     "--target", "nope"])
    assert not result.success and "nope" in str(result.exception)
    with pytest.raises(ProjectError, match="target 'nope' not found in profile 'fresh'"):
        from featurehouse.project import DbtProject

        DbtProject(project, project, target="nope").manifest()


# -- 7c, 8: a real `featurehouse serve` -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, base: str, port: int, token: str, lines: list[str], project: Path, url: str,
                 answered_when_announced: bool):
        self.base, self.port, self.token, self.lines, self.project, self.redis_url = base, port, token, lines, project, url
        self.answered_when_announced = answered_when_announced


def healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def serve_command(project: Path, port: int, redis_url: str) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"FEATUREHOUSE_REDIS_URL": redis_url, "FEATUREHOUSE_AUTH": "token"})
    return [sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(project), "serve", "--port", str(port)], env


def start_serve(project: Path, port: int, redis_url: str) -> tuple[subprocess.Popen, queue.Queue]:
    command, env = serve_command(project, port, redis_url)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedded_redis):
    """`featurehouse serve` on a small shop project (customer_id bigint), tokens required; the line that says
    it serves is checked against /healthz the moment it is printed."""
    from featurehouse.access.tokens import new_token
    from featurehouse.online.keys import TOKENS
    from tests.shop_project import write_project

    project = write_project(tmp_path_factory.mktemp("adoption"), scores=False)
    online = RedisOnlineStore.from_url(embedded_redis.url)
    online.client.flushdb()
    store = FeatureStore(project)
    try:
        view = store.registry.view("customer_orders")
    finally:
        store.close()
    online.write(view, [OnlineRow((3,), utcnow() - timedelta(minutes=5), utcnow(), (4, 104))])
    token, record = new_token("svc-test", "read", timedelta(days=1), utcnow())
    online.client.hset(TOKENS, record.token_id, record.online_value())
    online.close()

    port = free_port()
    proc, lines = start_serve(project, port, embedded_redis.url)
    seen: list[str] = []
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "featurehouse serve exited:\n" + "\n".join(seen)
            seen.append(line)
            if line.startswith("serving on"):
                answered = healthy(base)  # at once, without waiting or retrying: a worker must answer already
                break
        while not healthy(base):
            assert time.monotonic() < deadline, "featurehouse serve did not answer:\n" + "\n".join(seen)
            time.sleep(0.05)
        yield Served(base, port, token, seen, project, embedded_redis.url, answered)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_serve_says_it_serves_only_once_a_worker_answers(served):
    starting = next(i for i, line in enumerate(served.lines) if line.startswith("starting 1 worker on"))
    serving = next(i for i, line in enumerate(served.lines) if line.startswith("serving on"))
    assert starting < serving and served.answered_when_announced
    assert f"serving on http://127.0.0.1:{served.port} (1 worker)" in served.lines[serving]


def test_serve_on_a_port_in_use_is_one_line_naming_it(served):
    command, env = serve_command(served.project, served.port, served.redis_url)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=30)  # granian would share the port (SO_REUSEPORT) and serve on
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)
    assert proc.returncode == 2, out
    assert f"port {served.port} on 127.0.0.1 is in use by another process" in out and "Traceback" not in out
    assert "serving on" not in out


def test_announce_waits_for_an_answer_and_stops_with_the_server():
    said: list[str] = []
    stopped = threading.Event()
    port = free_port()
    waiter = threading.Thread(target=lambda: said.append(str(_announce(port, said, stopped))), daemon=True)
    waiter.start()
    time.sleep(0.3)
    assert said == []  # nothing listens yet

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        waiter.join(timeout=5)
        assert said == ["up", "True"]
    finally:
        stopped.set()
        server.shutdown()
        server.server_close()
    stopped_early = threading.Event()
    stopped_early.set()
    assert _announce(free_port(), [], stopped_early) is False


def _announce(port: int, said: list[str], stopped: threading.Event) -> bool:
    from featurehouse.cli.commands_serve import announce_when_serving

    return announce_when_serving("127.0.0.1", port, "up", said.append, stopped, poll_s=0.02)


def count_connections(monkeypatch, port: int) -> list:
    """Every TCP connection this process opens to `port` (httpcore connects with socket.create_connection)."""
    opened: list = []
    real = socket.create_connection

    def counting(address, *args, **kwargs):
        if address[1] == port:
            opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counting)
    return opened


def test_the_client_reuses_one_connection_across_calls(served, monkeypatch):
    opened = count_connections(monkeypatch, served.port)
    monkeypatch.setenv("FEATUREHOUSE_TOKEN", served.token)
    with ServingClient(served.base) as client:
        for _ in range(5):
            [vector] = client.online_features("customer", 3, ["customer_orders.n_small", "customer_orders.n_large"])
            assert (vector.features["customer_orders.n_small"].value, vector.features["customer_orders.n_large"].value) \
                == (4, 104)
        assert len(opened) == 1
    assert client._http.is_closed


def test_the_client_against_a_real_server_refuses_without_a_token_and_names_bad_keys(served, monkeypatch):
    monkeypatch.delenv("FEATUREHOUSE_TOKEN", raising=False)
    with ServingClient(served.base) as client, pytest.raises(ServingRefused) as e:
        client.online_features("customer", ["3"], ["customer_orders.n_small"])
    assert e.value.status == 401
    with ServingClient(served.base, token=served.token) as client:
        with pytest.raises(InvalidRequest, match="key column 'customer_id' is bigint, and 'abc' is not an integer"):
            client.online_features("customer", ["abc"], ["customer_orders.n_small"])
        with pytest.raises(UnknownFeature):
            client.online_features("customer", ["3"], ["customer_orders.nope"])
    r = httpx.get(f"{served.base}/v1/features/customer/abc", params={"names": "customer_orders.n_small"},
                  headers={"Authorization": f"Bearer {served.token}"})
    assert r.status_code == 422 and "'abc'" in r.json()["detail"]


def test_the_cli_push_parks_a_row_missing_features_naming_them(served, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATUREHOUSE_REDIS_URL", served.redis_url)
    rows = tmp_path / "rows.jsonl"
    at = (utcnow() - timedelta(minutes=1)).isoformat()
    rows.write_text(json.dumps({"customer_id": 3, "event_time": at, "n_small": 1, "n_large": 2}) + "\n"
                    + json.dumps({"customer_id": 4, "event_time": at, "n_small": 1}) + "\n")
    result = CliRunner().invoke(cli, ["--project-dir", str(served.project), "push", "customer_orders", str(rows)],
                                catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "1 rows appended" in result.output and "rejected row 1" in result.output
    assert "lacks feature(s) n_large" in result.output


# -- 8. ServingClient over the ASGI app and a scripted transport -------------------------------------


class ThroughTestClient(httpx.BaseTransport):
    """The ASGI app as a sync transport: starlette's TestClient runs the app (httpx's ASGITransport is async)."""

    def __init__(self, app: TestClient):
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k in ("authorization", "content-type", "accept")}
        r = self.app.request(request.method, request.url.raw_path.decode(), content=request.read(), headers=headers)
        return httpx.Response(r.status_code, headers=r.headers, content=r.content)


def test_the_client_returns_what_the_in_process_reader_returns(online, redis_url, monkeypatch):
    from featurehouse.access.tokens import new_token
    from featurehouse.online.keys import TOKENS

    monkeypatch.delenv("FEATUREHOUSE_TOKEN", raising=False)
    token, record = new_token("svc-test", "read", timedelta(days=1), utcnow())
    online.client.hset(TOKENS, record.token_id, record.online_value())
    with app_client(redis_url, auth="token") as app:
        client = ServingClient("http://testserver", token=token, transport=ThroughTestClient(app))
        remote = client.online_features("user", ["1", "2"], ["txn.count_1h", "txn.amount"])
        with pytest.raises(ServingRefused) as refused:
            ServingClient("http://testserver", transport=ThroughTestClient(app)).online_features("user", ["1"],
                                                                                         ["txn.count_1h"])
        assert refused.value.status == 401 and "Bearer" in str(refused.value)
        with pytest.raises(InvalidRequest, match="'abc' is not an integer"):
            client.online_features("user", "abc", ["txn.count_1h"])
        client.close()
    store = sdk_store(redis_url)
    try:
        local = store.online_features("user", ["1", "2"], ["txn.count_1h", "txn.amount"])
    finally:
        store.close()
    assert all(isinstance(v, FeatureVector) for v in remote)
    assert all(isinstance(f, FeatureValue) for v in remote for f in v.features.values())
    for r, loc in zip(remote, local):
        assert r.entity_id == loc.entity_id and r.stale == loc.stale and r.served_at.tzinfo is None
        for name, value in r.features.items():
            other = loc.features[name]
            assert (value.value, value.event_time, value.status, value.version) == \
                (other.value, other.event_time, other.status, other.version)


def scripted(*answers):
    """A transport answering each request with the next of `answers` (an httpx.Response or an exception)."""
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        answer = answers[min(len(calls), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), calls


VECTORS = {"vectors": [{"entity_type": "user", "entity_id": "1", "stale": False, "served_at": "2026-01-01T00:00:00Z",
                        "features": {"txn.count_1h": {"value": 3, "event_time": "2026-01-01T00:00:00Z",
                                                      "age_seconds": 0.0, "stale": False, "version": 1,
                                                      "status": "ok"}}}]}


def busy(retry_after: str | None) -> httpx.Response:
    return httpx.Response(503, json={"error": "online_store_unavailable", "detail": "slow"},
                          headers={"Retry-After": retry_after} if retry_after is not None else {})


def test_a_503_with_retry_after_and_a_failed_connection_are_retried_a_bounded_number_of_times():
    transport, calls = scripted(busy("0"), httpx.ConnectError("refused"), httpx.Response(200, json=VECTORS))
    [vector] = ServingClient("http://fh", transport=transport, retries=2).online_features("user", "1", ["txn.count_1h"])
    assert vector.features["txn.count_1h"].value == 3 and len(calls) == 3

    transport, calls = scripted(httpx.ConnectError("refused"))
    with pytest.raises(ServingUnavailable, match="serving unreachable at http://fh: refused"):
        ServingClient("http://fh", transport=transport, retries=3).online_features("user", "1", ["txn.count_1h"])
    assert len(calls) == 4  # the first try and 3 retries

    transport, calls = scripted(busy("0"))
    with pytest.raises(ServingUnavailable) as e:
        ServingClient("http://fh", transport=transport, retries=1).online_features("user", "1", ["txn.count_1h"])
    assert len(calls) == 2 and e.value.retry_after == 0


@pytest.mark.parametrize("answer", [busy(None), busy("60"), httpx.Response(500, json={"error": "x", "detail": "bug"}),
                                    httpx.ReadTimeout("slow")])
def test_other_failures_are_not_retried(answer):
    transport, calls = scripted(answer, httpx.Response(200, json=VECTORS))
    with pytest.raises(ServingUnavailable) as e:
        ServingClient("http://fh", transport=transport, retries=3).online_features("user", "1", ["txn.count_1h"])
    assert len(calls) == 1
    if isinstance(answer, httpx.Response) and answer.headers.get("retry-after") == "60":
        assert e.value.retry_after == 60  # longer than the client waits: the caller decides


def test_the_token_comes_from_the_argument_or_featurehouse_token(monkeypatch):
    transport, calls = scripted(httpx.Response(200, json=VECTORS))
    monkeypatch.setenv("FEATUREHOUSE_TOKEN", "fh_env_secret")
    ServingClient("http://fh", transport=transport).online_features("user", "1", ["txn.count_1h"])
    ServingClient("http://fh", transport=transport, token="fh_arg_secret").online_features("user", "1", ["txn.count_1h"])
    monkeypatch.delenv("FEATUREHOUSE_TOKEN")
    ServingClient("http://fh", transport=transport).online_features("user", "1", ["txn.count_1h"])
    assert [c.headers.get("authorization") for c in calls] == ["Bearer fh_env_secret", "Bearer fh_arg_secret", None]


def test_a_server_that_never_answers_times_out_at_the_read_timeout_without_a_retry():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = ServingClient(f"http://127.0.0.1:{port}", timeout=5, read_timeout=0.3, retries=3)
        assert (client._http.timeout.connect, client._http.timeout.read) == (5, 0.3)
        started = time.monotonic()
        with pytest.raises(ServingUnavailable, match="did not answer in time"):
            client.online_features("user", "1", ["txn.count_1h"])
        assert time.monotonic() - started < 2
        client.close()
