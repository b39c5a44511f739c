"""Limits against denial of service (docs/security.md): half-open connections, request bodies, pending
definitions, what a 503 reveals, and /docs without a CDN.

The connection and body limits are checked on a real `featurehouse serve` process (granian) with raw
sockets; the rest on the real app over ASGI, on the embedded Redis (or a closed port for the 503s).
"""

from __future__ import annotations

import asyncio
import logging
import re
import selectors
import socket
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from featurehouse.cli.commands_serve import check_limits, granian_limits
from featurehouse.online.store import RedisOnlineStore
from featurehouse.serving.app import DOCS_ASSETS, ServeConfig, create_app
from featurehouse.serving.definitions import MAX_STORED_BYTES, PENDING
from featurehouse.stream.http import STORE_UNAVAILABLE, create_push_app
from tests.shop_project import serving, write_project
from tests.test_serving import registry
from tests.test_serving_fuzz import PushStore

LOGGER = "featurehouse.serving"
ROW = {"user_id": 1, "event_time": "2026-01-01T00:00:00", "count_1h": 1, "amount": 1.0}
BODY_ROUTES = {  # path -> a small valid body
    "/v1/features/user:batchGet": b'{"ids": ["1"], "names": ["txn.count_1h"]}',
    "/v1/feature-definitions": b'{"name": "device", "entity": "user", "schema": {"os": "varchar"}}',
    "/v1/push/txn": b'[{"user_id": 1, "event_time": "2026-01-01T00:00:00", "count_1h": 1, "amount": 1.0}]',
}


def config(url: str, **limits) -> ServeConfig:
    return ServeConfig(redis_url=url, timeout_s=0.5, auth="none", push=True, **limits)


def definition(name: str, **schema) -> dict:
    return {"name": name, "entity": "user", "schema": schema or {"os": "varchar"}}


@pytest.fixture
def pending(embedded_redis):
    """The pending-definitions hash, empty before and after the test."""
    client = redis.Redis.from_url(embedded_redis.url)
    client.delete(PENDING)
    yield client
    client.delete(PENDING)
    client.close()


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- request bodies, over ASGI: the limit is enforced before (or while) the body is read ---------------

async def call(app, path: str, headers: list[tuple[bytes, bytes]], chunks, *, lifespan: bool = False):
    """POST `path` to the ASGI app with a body arriving in `chunks` (an iterator; more_body while it lasts).
    Returns (status, body, bytes the app pulled)."""
    pulled = 0
    sent: list[dict] = []
    chunks = iter(chunks)

    async def receive():
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        if isinstance(chunk, float):  # a pause: the client is slow
            await asyncio.sleep(chunk)
            chunk = b"x"
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), (b"content-type", b"application/json"), *headers],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, httpx.Response(status, content=body).json(), pulled


def forever(chunk: bytes):
    while True:
        yield chunk


@pytest.mark.parametrize("path", sorted(BODY_ROUTES))
def test_a_body_declared_over_the_limit_is_a_413_before_a_byte_is_read(embedded_redis, path):
    app = create_app(registry(), config(embedded_redis.url, max_body_bytes=4096, max_push_body_bytes=8192))
    limit = 8192 if path.startswith("/v1/push/") else 4096
    status, body, pulled = asyncio.run(call(app, path, [(b"content-length", b"209715200")], forever(b"x" * 65536)))
    assert status == 413 and pulled == 0
    assert body["error"] == "body_too_large" and f"at most {limit} bytes" in body["detail"]


@pytest.mark.parametrize("declared", [None, b"10"], ids=["chunked", "false-content-length"])
@pytest.mark.parametrize("path", sorted(BODY_ROUTES))
def test_a_body_with_no_or_a_false_length_is_cut_off_at_the_limit(embedded_redis, path, declared):
    app = create_app(registry(), config(embedded_redis.url, max_body_bytes=4096, max_push_body_bytes=8192))
    limit = 8192 if path.startswith("/v1/push/") else 4096
    headers = [(b"content-length", declared)] if declared else []
    status, body, pulled = asyncio.run(call(app, path, headers, forever(b"x" * 1000)))
    assert status == 413 and body["error"] == "body_too_large"
    assert limit < pulled <= limit + 1000  # reading stopped at the chunk that passed the limit


@pytest.mark.parametrize("path", sorted(BODY_ROUTES))
def test_a_body_under_the_limit_is_taken(embedded_redis, pending, path):
    app = create_app(registry(), config(embedded_redis.url, max_body_bytes=4096, max_push_body_bytes=4096))
    body = BODY_ROUTES[path]
    padded = body[:-1] + b" " * (4096 - len(body)) + body[-1:]  # exactly at the limit: JSON allows the spaces
    assert len(padded) == 4096
    with TestClient(app) as client:
        for content in (body, padded):
            r = client.post(path, content=content, headers={"content-type": "application/json"})
            assert r.status_code in (200, 201, 202), r.text


def test_the_push_route_has_its_own_larger_default_limit():
    assert ServeConfig(redis_url="redis://x").max_body_bytes == 1 << 20
    assert ServeConfig(redis_url="redis://x").max_push_body_bytes == 16 << 20


def test_a_body_that_trickles_in_is_a_408_after_the_body_timeout(embedded_redis):
    app = create_app(registry(), config(embedded_redis.url, body_timeout_s=0.3))
    started = time.monotonic()
    status, body, _ = asyncio.run(call(app, "/v1/features/user:batchGet", [], iter([0.2] * 50)))
    assert status == 408 and body["error"] == "body_timeout"
    assert time.monotonic() - started < 2


def test_push_api_limits_its_bodies_too(embedded_redis):
    online = RedisOnlineStore.from_url(embedded_redis.url)
    try:
        app = create_push_app(PushStore(registry(), online, timedelta(minutes=5)), max_body_bytes=2048, auth="none")
        status, body, pulled = asyncio.run(call(app, "/v1/push/txn", [(b"content-length", b"209715200")],
                                                forever(b"x" * 65536)))
        assert (status, body["error"], pulled) == (413, "body_too_large", 0)
        status, body, pulled = asyncio.run(call(app, "/v1/push/txn", [], forever(b"x" * 1000)))
        assert status == 413 and pulled <= 3000
        r = TestClient(app).post("/v1/push/txn", json=[ROW])
        assert r.status_code == 202, r.text
    finally:
        online.close()


# --- pending feature definitions are bounded -----------------------------------------------------------

def test_pending_definitions_stop_at_max_definitions_with_a_409_naming_the_limit(embedded_redis, pending):
    app = create_app(registry(), config(embedded_redis.url, max_definitions=3))
    with TestClient(app) as client:
        for i in range(3):
            assert client.post("/v1/feature-definitions", json=definition(f"d{i}")).status_code == 201
        r = client.post("/v1/feature-definitions", json=definition("d3"))
        assert r.status_code == 409
        body = r.json()
        assert body["error"] == "too_many_definitions" and body["limit"] == 3
        assert "at most 3 pending definitions" in body["detail"] and "max_definitions" in body["detail"]
        # what is already pending is still judged: identical is 200, a changed schema the usual 409
        assert client.post("/v1/feature-definitions", json=definition("d0")).status_code == 200
        assert client.post("/v1/feature-definitions", json=definition("d0", os="bigint")).json()["error"] == \
            "schema_conflict"
        # and a definition dbt already declares is no pending one
        assert client.post("/v1/feature-definitions", json={"name": "profile", "entity": "user",
                                                            "schema": {"country": "varchar"}}).status_code == 200
    assert pending.hlen(PENDING) == 3


def test_concurrent_definitions_cannot_pass_the_cap(embedded_redis, pending):
    app = create_app(registry(), config(embedded_redis.url, max_definitions=5))

    async def post_many():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/v1/feature-definitions", json=definition(f"c{i}"))
                                          for i in range(40)))

    codes = [r.status_code for r in asyncio.run(post_many())]
    assert codes.count(201) == 5 and codes.count(409) == 35
    assert pending.hlen(PENDING) == 5


def test_a_definition_too_large_to_keep_is_a_413(embedded_redis, pending):
    app = create_app(registry(), config(embedded_redis.url))
    columns = {f"column_{i:05d}_with_a_long_name": "double precision" for i in range(MAX_STORED_BYTES // 40)}
    r = TestClient(app).post("/v1/feature-definitions", json=definition("wide", **columns))
    assert r.status_code == 413 and r.json()["error"] == "definition_too_large"
    assert pending.hlen(PENDING) == 0


# --- a 503 names no host or port; the log does ----------------------------------------------------------

STORE_DOWN_CALLS = {
    "vector": lambda c: c.get("/v1/features/user/1?names=txn.count_1h"),
    "batch": lambda c: c.post("/v1/features/user:batchGet", json={"ids": ["1"], "names": ["txn.count_1h"]}),
    "definitions-post": lambda c: c.post("/v1/feature-definitions", json=definition("device")),
    "definitions-get": lambda c: c.get("/v1/feature-definitions"),
    "readyz": lambda c: c.get("/readyz"),
    "push": lambda c: c.post("/v1/push/txn", json=[ROW]),
}


def assert_503_hides_and_logs_the_cause(response, caplog, port: int) -> None:
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    body = response.json()
    assert body["error"] == "online_store_unavailable" and body["detail"] == STORE_UNAVAILABLE
    assert str(port) not in response.text and "127.0.0.1" not in response.text and "Error" not in response.text
    [record] = [r for r in caplog.records if r.name == LOGGER]
    message = record.getMessage()
    assert response.headers["x-request-id"] in message and f"127.0.0.1:{port}" in message


@pytest.mark.parametrize("call", list(STORE_DOWN_CALLS.values()), ids=list(STORE_DOWN_CALLS))
def test_a_503_body_reveals_no_host_or_port_and_the_log_has_them(call, caplog):
    port = closed_port()
    app = create_app(registry(), config(f"redis://127.0.0.1:{port}/0"))
    with caplog.at_level(logging.WARNING, LOGGER):
        response = call(TestClient(app))
    assert_503_hides_and_logs_the_cause(response, caplog, port)


def test_a_push_api_503_reveals_no_host_or_port_and_the_log_has_them(tmp_path, caplog):
    """push-api checks its store when it starts: a Redis on a loopback TCP port, stopped after that."""
    import subprocess

    from featurehouse.online.embedded import server_binary

    port = closed_port()
    proc = subprocess.Popen([server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    online = None
    try:
        for _ in range(500):
            try:
                online = RedisOnlineStore.from_url(f"redis://127.0.0.1:{port}/0")
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.01)
        assert online is not None, "redis-server did not start"
        app = create_push_app(PushStore(registry(), online, timedelta(minutes=5)), auth="none")
        proc.terminate()
        proc.wait(timeout=10)  # the store is down: its port is closed
        with caplog.at_level(logging.WARNING, LOGGER):
            response = TestClient(app).post("/v1/push/txn", json=[ROW])
        assert_503_hides_and_logs_the_cause(response, caplog, port)
    finally:
        if online is not None:
            online.close()
        proc.terminate()
        proc.wait(timeout=10)


# --- /docs from this server alone ------------------------------------------------------------------------

@pytest.mark.parametrize("auth", ["none", "token"])
def test_docs_load_nothing_from_another_origin_and_their_assets_are_served(auth):
    app = create_app(registry(), ServeConfig(redis_url=f"redis://127.0.0.1:{closed_port()}/0", auth=auth))
    client = TestClient(app)
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://|//[a-z]", page.text, re.I), "the page names another origin"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {a.split("?")[0] for a in assets} == {f"/docs/static/{name}" for name in DOCS_ASSETS} | {"/openapi.json"}
    for asset in assets:
        if asset == "/openapi.json":
            continue
        name = asset.split("?")[0].rsplit("/", 1)[1]
        r = client.get(asset)
        assert r.status_code == 200 and r.headers["content-type"] == DOCS_ASSETS[name], asset
        assert "max-age" in r.headers["cache-control"] and r.headers["etag"] and len(r.content) > 50
        again = client.get(asset, headers={"if-none-match": r.headers["etag"]})
        assert again.status_code == 304 and not again.content
    js = client.get("/docs/static/swagger-ui-bundle.js", headers={"accept-encoding": "gzip"})
    assert js.headers["content-encoding"] == "gzip" and b"SwaggerUIBundle" in js.content  # httpx decompressed it
    plain = client.get("/docs/static/swagger-ui-bundle.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == js.content
    assert plain.headers["etag"] != js.headers["etag"]  # one ETag per encoding


@pytest.mark.parametrize("path", ["/docs/static/swagger-ui.js.map", "/docs/static/index.html",
                                  "/docs/static/..%2F__init__.py", "/docs/static/../static/swagger-ui.css%00",
                                  "/docs/static/%2e%2e%2f%2e%2e%2fapp.py", "/docs/static/"])
def test_docs_serve_only_their_listed_files(path):
    from featurehouse.serving.app import _load_docs_asset

    app = create_app(registry(), ServeConfig(redis_url=f"redis://127.0.0.1:{closed_port()}/0", auth="none"))
    misses = _load_docs_asset.cache_info().misses
    r = TestClient(app).get(path)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert _load_docs_asset.cache_info().misses == misses  # no file was looked for: the cache keeps the real ones


# --- the settings of `featurehouse serve` -----------------------------------------------------------------

def test_serve_limits_default_and_reach_granian():
    limits = check_limits({})
    assert limits == {"header_timeout_s": 5.0, "backlog": 4096, "max_connections": 4096, "max_body_bytes": 1 << 20,
                      "max_push_body_bytes": 16 << 20, "body_timeout_s": 10.0, "max_definitions": 1000}
    options = granian_limits(limits)
    assert options["backlog"] == 4096 and options["backpressure"] == 4096
    assert options["http1_settings"].header_read_timeout == 5000
    assert options["http1_settings"].max_buffer_size == 64 << 10
    assert granian_limits(check_limits({"header_timeout_s": "0.25"}))["http1_settings"].header_read_timeout == 250


@pytest.mark.parametrize("name, value, fragment", [
    ("header_timeout_s", "0", "header_timeout_s '0': give a number of seconds above 0 (at most 60)"),
    ("header_timeout_s", "61", "at most 60"),
    ("backlog", "10", "backlog 10: give a whole number from 128 to 65535"),
    ("max_connections", "many", "max_connections 'many'"),
    ("max_body_bytes", "100", "max_body_bytes 100: give a whole number from 1024"),
    ("max_push_body_bytes", str(2 << 30), "max_push_body_bytes"),
    ("body_timeout_s", "-1", "body_timeout_s '-1'"),
    ("max_definitions", "-1", "max_definitions -1: give a whole number from 0"),
])
def test_a_bad_limit_is_refused_naming_it(name, value, fragment):
    from featurehouse.errors import FeaturehouseError

    with pytest.raises(FeaturehouseError, match=re.escape(fragment)):
        check_limits({name: value})


def test_serve_refuses_a_bad_limit_in_its_config_before_starting(tmp_path):
    from click.testing import CliRunner

    from featurehouse.cli.main import cli

    project = write_project(tmp_path, scores=False)
    bad = tmp_path / "serve.yaml"
    bad.write_text("header_timeout_s: 0\n")
    result = CliRunner().invoke(cli, ["--project-dir", str(project), "serve", "--config", str(bad)])
    assert result.exit_code != 0 and "header_timeout_s" in result.output


# --- a real `featurehouse serve`: half-open connections and large bodies ------------------------------------

def serve_config(directory: Path, **settings) -> Path:
    path = directory / "serve.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in {"auth": "none", **settings}.items()))
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return write_project(tmp_path_factory.mktemp("limits"), scores=False)


@pytest.fixture(scope="module")
def server(project, embedded_redis, tmp_path_factory):
    """`featurehouse serve` with the default limits but a 2 s header timeout (a shorter test)."""
    conf = serve_config(tmp_path_factory.mktemp("conf"), header_timeout_s=2)
    with serving(project, embedded_redis.url, "--config", str(conf)) as base:
        yield int(base.rsplit(":", 1)[1])


def half_open(port: int, n: int) -> list[socket.socket]:
    """n connections that send part of a request's headers and then nothing (slowloris)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    return socks


def wait_closed(socks: list[socket.socket], deadline_s: float) -> list[float]:
    """Seconds until each socket was closed by the server (its end of stream), within the deadline."""
    started, closed = time.monotonic(), []
    with selectors.DefaultSelector() as sel:
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while len(closed) < len(socks) and time.monotonic() - started < deadline_s:
            for key, _ in sel.select(timeout=0.1):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(4096)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data or data.startswith(b"HTTP/1.1 408"):
                    closed.append(time.monotonic() - started)
                    sel.unregister(s)
    for s in socks:
        s.close()
    return closed


def timed_get(port: int, path: str = "/healthz", timeout: float = 30) -> float:
    started = time.monotonic()
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout).status == 200
    return time.monotonic() - started


def test_past_a_thousand_half_open_connections_others_are_served_and_those_closed_at_the_timeout(server):
    socks = half_open(server, 1100)  # more than granian's former default of 1,024 per worker
    opened = time.monotonic()
    assert timed_get(server) < 1.5
    assert timed_get(server, "/v1/features/customer/1?names=customer_orders.n_small") < 1.5
    waiting = time.monotonic()
    closed = [waiting - opened + seconds for seconds in wait_closed(socks, deadline_s=8)]
    assert len(closed) == 1100, f"{1100 - len(closed)} half-open connections still open after 8 s"
    assert 1.0 < min(closed) and max(closed) < 2 + 4  # at the header timeout (2 s here), with some slack


def test_when_every_connection_slot_is_held_the_stall_lasts_the_header_timeout_not_30_s(project, embedded_redis,
                                                                                         tmp_path):
    conf = serve_config(tmp_path, header_timeout_s=1, max_connections=16)
    with serving(project, embedded_redis.url, "--config", str(conf)) as base:
        port = int(base.rsplit(":", 1)[1])
        time.sleep(1.5)  # the readiness probe's kept-alive connection is closed by now
        socks = half_open(port, 40)
        assert timed_get(port) < 1 + 2.5
        assert len(wait_closed(socks, deadline_s=6)) == 40


def raw_request(port: int, head: bytes, body_chunks, timeout: float = 10) -> tuple[bytes, int, float]:
    """Send `head`, then body chunks until the server answers; (its answer, body bytes sent, seconds)."""
    started, sent = time.monotonic(), 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        s.setblocking(False)
        answer = b""
        for chunk in body_chunks:
            try:
                answer += s.recv(65536)
            except BlockingIOError:
                pass
            if answer or time.monotonic() - started > timeout:
                break
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
        s.setblocking(True)
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            try:
                more = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not more:
                break
            answer += more
    return answer, sent, time.monotonic() - started


def test_a_200_mb_body_is_refused_by_its_content_length_at_once(server):
    head = (b"POST /v1/features/customer:batchGet HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 209715200\r\n\r\n")
    answer, sent, seconds = raw_request(server, head, forever(b"x" * 65536))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error":"body_too_large"' in answer and b"at most 1048576 bytes" in answer
    assert seconds < 2 and sent < 32 << 20  # not the 200 MB


def test_a_chunked_body_is_cut_off_at_the_limit(server):
    head = (b"POST /v1/features/customer:batchGet HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    answer, sent, seconds = raw_request(server, head, forever(chunk))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert seconds < 3 and sent < 32 << 20  # stopped near 1 MiB (and what the sockets' buffers hold)


def test_a_body_under_the_limit_is_served_by_the_real_server(server):
    body = b'{"ids": ["1", "2"], "names": ["customer_orders.n_small"]}'
    request = urllib.request.Request(f"http://127.0.0.1:{server}/v1/features/customer:batchGet", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200 and len(httpx.Response(200, content=r.read()).json()["vectors"]) == 2


def test_serve_raises_the_open_files_limit_to_fit_its_connections_or_holds_fewer():
    import subprocess
    import sys

    script = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (512, 1024)); "
              "from featurehouse.cli.commands_serve import fit_open_files as fit; "
              "print(fit(200), resource.getrlimit(resource.RLIMIT_NOFILE)[0], fit(600), "
              "resource.getrlimit(resource.RLIMIT_NOFILE)[0], fit(4096))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # 200 fit in 512 as it is; 600 needs 856 files: raised; 4096 cannot fit under the hard limit of 1024
    assert out.stdout.split() == ["200", "512", "600", "856", str(1024 - 256)]
