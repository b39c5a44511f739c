"""`featurehouse serve`: the HTTP serving API."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import click
import yaml

from featurehouse.cli.context import CliContext
from featurehouse.errors import FeaturehouseError, WarehouseUnavailable

SETTINGS = ("redis_url", "max_ids", "timeout_s", "host", "port", "workers", "log_sample_rate", "auth", "push",
            "near_cache", "replica_reads")
# Limits against denial of service (docs/security.md): also settings of the --config file and env vars.
LIMITS = ("header_timeout_s", "backlog", "max_connections", "max_body_bytes", "max_push_body_bytes", "body_timeout_s",
          "max_definitions")
SETTINGS += LIMITS
HTTP1_BUFFER_BYTES = 64 << 10  # HTTP/1 read buffer: a request head that overflows it is refused (431)


def load_settings(config: Path | None) -> dict:
    """A YAML file's settings, overridden by FEATUREHOUSE_<NAME> environment variables."""
    settings: dict = {}
    if config is not None:
        if not config.is_file():
            raise FeaturehouseError(f"--config {config}: no such file")
        try:
            settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise FeaturehouseError(f"--config {config}: not valid YAML: {' '.join(str(e).split())}") from None
        if not isinstance(settings, dict):
            raise FeaturehouseError(f"--config {config}: expected a mapping of settings ({', '.join(SETTINGS)})")
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise FeaturehouseError(f"--config {config}: unknown setting '{unknown[0]}' (known: {', '.join(SETTINGS)})")
    for name in SETTINGS:
        value = os.environ.get(f"FEATUREHOUSE_{name.upper()}")
        if value is not None:
            settings[name] = value
    return settings


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default 8000).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default 1).")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"YAML file with any of: {', '.join(SETTINGS)}; FEATUREHOUSE_<NAME> env vars override it. "
                   "Limits (docs/security.md): header_timeout_s (5: seconds a client has to send a request's "
                   "headers; an idle keep-alive connection is closed after it too), backlog (4096 connections "
                   "waiting to be accepted), max_connections (4096 open connections per worker), max_body_bytes "
                   "(1048576: batchGet and feature-definitions bodies), max_push_body_bytes (16777216: push "
                   "bodies), body_timeout_s (10: seconds a body has to arrive), max_definitions (1000 pending "
                   "feature definitions). near_cache (off; true, or entries / slo_fraction / max_age_s): each "
                   "worker keeps hot entities' values for at most slo_fraction (0.1) of their views' freshness SLO "
                   "and max_age_s (1); views without an SLO are never cached. replica_reads (off; true, or "
                   "max_lag_s / probe_every_s), on a Redis Cluster: read replicas proven at most max_lag_s (0.5) "
                   "behind their primary, each vector's behind_s saying how far at most.")
@click.pass_obj
def serve(obj: CliContext, host, port, workers, config) -> None:
    """Serve feature vectors over HTTP (granian, ASGI): GET /v1/features/{entityType}/{entityId}.

    Interactive docs at /docs, OpenAPI at /openapi.json, health at /healthz and /readyz, Prometheus
    metrics at /metrics (with --workers N, any worker's /metrics adds up all of them). The online
    store is FEATUREHOUSE_REDIS_URL, or the project's embedded Redis, which this process then owns for
    as long as it serves.

    Every route but health and docs needs `Authorization: Bearer <token>` (`featurehouse token create`);
    the setting `auth: none` is accepted on a loopback host only. Which features a token's principal may
    read is the project's access policy (docs/security.md). The push route is mounted with `push: true`.
    """
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    settings = load_settings(config)
    try:
        rate = float(settings.get("log_sample_rate", 0.01))
        if not 0.0 <= rate <= 1.0:
            raise ValueError
    except ValueError:
        raise FeaturehouseError(f"log_sample_rate {settings.get('log_sample_rate')!r}: give a share between 0 and 1 "
                                "(0.01 logs 1% of served vectors for `featurehouse skew` and `drift`)") from None
    # every setting checked before anything starts: a worker must not be the one to find a bad value
    max_ids = _whole(settings.get("max_ids", 1000), "max_ids", 1, 100_000)
    timeout_s = _seconds(settings.get("timeout_s", 0.5), "timeout_s")
    host = host or settings.get("host", "127.0.0.1")
    from featurehouse.access.http import check_auth_mode

    auth = check_auth_mode(settings.get("auth", "token"), host)
    push = _flag(settings.get("push", False), "push")
    from featurehouse.serving.near_cache import near_cache_config, near_cache_setting

    near_cache = near_cache_config(settings.get("near_cache"))
    from featurehouse.online.connect import parse_url
    from featurehouse.online.replicas import ReplicaReadsSettingError, replica_reads_config, replica_reads_setting

    replica_reads = replica_reads_config(settings.get("replica_reads"))
    port = _whole(port or settings.get("port", 8000), "port", 1, 65535)
    workers = _whole(workers or settings.get("workers", 1), "workers", 1, 1024)
    limits = check_limits(settings)
    store = obj.store()
    project = store.project
    assert project is not None  # a CLI store is always over a dbt project
    url = settings.get("redis_url")  # the --config file's, or FEATUREHOUSE_REDIS_URL over it
    if url:  # this process checks the store the workers will read, and starts no embedded one beside it
        from featurehouse.online.store import RedisOnlineStore

        store.use_online_store(RedisOnlineStore.from_url(url))
    # The registry is loaded once, here, by the loader every process uses; workers read this snapshot. A
    # featurehouse process that starts `serve` may hand over the registry it loaded (FEATUREHOUSE_REGISTRY_SNAPSHOT):
    # `demo` on Spark does, as its local Derby metastore admits one process at a time.
    from featurehouse.registry.snapshot import load_snapshot, save_snapshot

    handed = os.environ.get("FEATUREHOUSE_REGISTRY_SNAPSHOT")
    snapshot = project.dir / ".featurehouse" / "serving" / f"registry-{os.getpid()}.pickle"
    if handed:
        save_snapshot(load_snapshot(handed), snapshot)
    elif project.target().type == "spark":
        # On Spark the registry is loaded in a child process: a JVM started here would hold a local Derby
        # metastore for as long as we serve, and every other featurehouse command would fail on it
        registry_in_child(obj, snapshot)
    else:
        save_snapshot(store.registry, snapshot)
    store.close_warehouse()  # a DuckDB file stays free for syncs while we serve
    if not url:
        url = store.online.embedded.url if store.online.embedded else None
    assert url is not None  # no Redis URL given: the online store is the project's embedded one
    if replica_reads is not None and not parse_url(url).cluster:
        raise ReplicaReadsSettingError("replica_reads needs a Redis Cluster URL (redis+cluster://host:port): "
                                       "a single Redis has no replicas featurehouse reads from")
    store.online.ping()
    os.environ.update({
        "FEATUREHOUSE_SERVING_WORKER": "1", "FEATUREHOUSE_PROJECT_DIR": str(project.dir),
        "FEATUREHOUSE_PROJECT_NAME": project.name,
        "FEATUREHOUSE_REGISTRY_SNAPSHOT": str(snapshot),
        "FEATUREHOUSE_REDIS_URL": url, "FEATUREHOUSE_MAX_IDS": str(max_ids), "FEATUREHOUSE_TIMEOUT_S": str(timeout_s),
        "FEATUREHOUSE_MAX_CLOCK_SKEW_S": str(store.max_clock_skew.total_seconds()),
        "FEATUREHOUSE_LOG_SAMPLE_RATE": str(settings.get("log_sample_rate", 0.01)),
        "FEATUREHOUSE_AUTH": auth, "FEATUREHOUSE_PUSH": "true" if push else "false",
        "FEATUREHOUSE_NEAR_CACHE": near_cache_setting(near_cache),
        "FEATUREHOUSE_REPLICA_READS": replica_reads_setting(replica_reads),
    })
    # the body and definition limits reach each worker's ServeConfig through the environment
    os.environ.update({f"FEATUREHOUSE_{name.upper()}": str(limits[name])
                       for name in ("max_body_bytes", "max_push_body_bytes", "body_timeout_s", "max_definitions")})
    connections = fit_open_files(limits["max_connections"])
    if connections < limits["max_connections"]:
        obj.console.print(f"max_connections lowered to {connections} per worker: the open-files limit (ulimit -n) "
                          "allows no more; raise it to hold more connections", markup=False, highlight=False)
        limits["max_connections"] = connections
    if project.target_name:
        os.environ["FEATUREHOUSE_TARGET"] = project.target_name
    if workers > 1:
        multiprocess_metrics_dir(project.dir)
    check_port_free(host, port)
    obj.console.print(f"starting {workers} worker{'s' if workers > 1 else ''} on http://{host}:{port} ...")
    serving = (f"serving on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''}); "
               f"docs at http://{host}:{port}/docs; feature catalog at http://{host}:{port}/ui; "
               + ("auth: none (loopback only)" if auth == "none" else "bearer tokens required")
               + ("; push route on" if push else "")
               + (f"; near-cache on (at most {near_cache.max_age_s:g} s, {near_cache.slo_fraction:g} of a view's SLO)"
                  if near_cache else "")
               + (f"; replica reads on (at most {replica_reads.max_lag_s:g} s behind)" if replica_reads else ""))
    stopped = threading.Event()
    # imported here, not in the thread: granian forks its workers while the thread runs, and a fork while
    # another thread holds an import lock leaves the worker waiting on that lock forever
    import http.client  # noqa: F401

    threading.Thread(target=announce_when_serving, args=(host, port, serving, obj.console.print, stopped),
                     name="featurehouse-serve-ready", daemon=True).start()
    # uvloop: a third more requests per second than asyncio's loop on the same handler (bench/serve.py)
    try:
        Granian("featurehouse.serving.asgi:app", address=host, port=port, workers=workers, interface=Interfaces.ASGI,
                loop=Loops.uvloop, http=HTTPModes.http1, websockets=False, log_enabled=False,
                **granian_limits(limits)).serve()
    finally:
        stopped.set()
        snapshot.unlink(missing_ok=True)


def registry_in_child(obj: CliContext, path: Path) -> None:
    """Load the project's registry in a spawned process that writes it to `path` (its JVM ends with it); its
    error, if any, raised here as the same kind (a warehouse held elsewhere stays exit 3)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_write_registry, args=(obj.project_dir, obj.target, obj.profiles_dir, str(path), send),
                        name="featurehouse-registry")
    child.start()
    send.close()
    try:
        outcome = receive.recv()
    except EOFError:  # it died without a word
        outcome = None
    child.join()
    kind, message = outcome or ("crashed", f"the process loading the registry exited ({child.exitcode})")
    if kind == "unavailable":
        raise WarehouseUnavailable(message)
    if kind != "ok":
        raise FeaturehouseError(message)


def _write_registry(project_dir, target, profiles_dir, path: str, send) -> None:
    from featurehouse.registry.snapshot import save_snapshot
    from featurehouse.store import FeatureStore

    try:
        store = FeatureStore(project_dir, target, profiles_dir)
        save_snapshot(store.registry, path)
        send.send(("ok", ""))
    except WarehouseUnavailable as e:
        send.send(("unavailable", str(e)))
    except FeaturehouseError as e:
        send.send(("error", str(e)))
    except Exception as e:  # noqa: BLE001 - a crash in the child, named in the parent
        send.send(("crashed", f"loading the registry crashed ({type(e).__name__}): {e}"))


READY_POLL_S = 0.05
READY_WARN_S = 30.0


def check_port_free(host: str, port: int) -> None:
    """A port another process listens on is one line naming it (granian would fail with a Rust backtrace),
    and `announce_when_serving` never mistakes that process's answers for ours."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise FeaturehouseError(f"--host {host}: cannot listen there ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise FeaturehouseError(f"port {port} on {host} is in use by another process: stop it, or pass "
                                        "--port") from None
            raise FeaturehouseError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def announce_when_serving(host: str, port: int, message: str, say, stopped: threading.Event,
                          poll_s: float = READY_POLL_S, warn_after_s: float = READY_WARN_S) -> bool:
    """Say `message` once a worker answers GET /healthz (granian binds, then starts its workers, which load
    the app: until one has, a request waits or fails). Said at most once; a note if none answers within
    `warn_after_s`; returns whether it was said (False: serving stopped first)."""
    import http.client
    import time

    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    started = time.monotonic()
    warned = False
    while not stopped.is_set():
        connection = http.client.HTTPConnection(probe, port, timeout=1.0)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                if not stopped.is_set():
                    say(message)
                    return True
                return False
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        if not warned and time.monotonic() - started > warn_after_s:
            say(f"no worker answers http://{host}:{port}/healthz after {warn_after_s:g} s: still starting, or "
                "failing (see the lines above)")
            warned = True
        stopped.wait(poll_s)
    return False


def check_limits(settings: dict) -> dict:
    """The limits against denial of service, each checked (a bad value names itself), with its default."""
    return {
        "header_timeout_s": _seconds(settings.get("header_timeout_s", 5), "header_timeout_s", 60),
        "backlog": _whole(settings.get("backlog", 4096), "backlog", 128, 65535),
        "max_connections": _whole(settings.get("max_connections", 4096), "max_connections", 16, 1_000_000),
        "max_body_bytes": _whole(settings.get("max_body_bytes", 1 << 20), "max_body_bytes", 1024, 1 << 30),
        "max_push_body_bytes": _whole(settings.get("max_push_body_bytes", 16 << 20), "max_push_body_bytes", 1024,
                                      1 << 30),
        "body_timeout_s": _seconds(settings.get("body_timeout_s", 10), "body_timeout_s"),
        "max_definitions": _whole(settings.get("max_definitions", 1000), "max_definitions", 0, 1_000_000),
    }


def granian_limits(limits: dict) -> dict:
    """Granian's options for the connection limits. A client has `header_timeout_s` to send a request's
    line and headers (hyper's header read timeout: it runs from the connection's start, and again for each
    next request on a kept-alive connection), so a half-open connection holds one of a worker's
    `max_connections` (granian's backpressure) for that long at most; connections past that wait in the
    kernel's `backlog` (capped by net.core.somaxconn)."""
    from granian.http import HTTP1Settings

    return {"backlog": limits["backlog"], "backpressure": limits["max_connections"],
            "http1_settings": HTTP1Settings(header_read_timeout=max(1, round(limits["header_timeout_s"] * 1000)),
                                            keep_alive=True, max_buffer_size=HTTP1_BUFFER_BYTES)}


def fit_open_files(connections: int, spare: int = 256) -> int:
    """How many connections a worker can hold: the open-files limit is raised (up to its hard limit) to
    fit `connections` and `spare` other files; when it cannot be, fewer. Workers inherit the limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + spare
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return connections
    return max(16, min(connections, soft - spare))


def _flag(value, name: str) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise FeaturehouseError(f"{name} {value!r}: give true or false")


def _whole(value, name: str, low: int, high: int) -> int:
    """A whole-number setting within bounds, or an error naming it (settings come from YAML or env)."""
    try:
        number = int(str(value))
    except ValueError:
        raise FeaturehouseError(f"{name} {value!r}: give a whole number from {low} to {high}") from None
    if not low <= number <= high:
        raise FeaturehouseError(f"{name} {number}: give a whole number from {low} to {high}")
    return number


def _seconds(value, name: str, high: float = 3600) -> float:
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= high:
        raise FeaturehouseError(f"{name} {value!r}: give a number of seconds above 0 (at most {high:g})")
    return seconds


def multiprocess_metrics_dir(project_dir: Path) -> Path:
    """Workers write their metrics under <project>/.featurehouse/metrics (emptied at start) and any
    worker's /metrics adds them up: prometheus_client's multiprocess mode. An existing
    PROMETHEUS_MULTIPROC_DIR is respected."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or project_dir / ".featurehouse" / "metrics")
    if path.is_dir():
        for child in path.glob("*.db"):
            child.unlink()
    else:
        path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path

