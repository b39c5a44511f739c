"""Who owns the embedded Redis, with real processes: every process using it is a registered user and the
last to leave stops it, a SIGKILLed user is pruned, a SIGKILLed owner's server is adopted and stopped,
`featurehouse online stop` stops it whoever uses it, and racing starters end with one server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from click.testing import CliRunner

from featurehouse.cli.main import cli
from featurehouse.online.embedded import EmbeddedRedis, server_status

REPO = Path(__file__).resolve().parent.parent

# A featurehouse process using the embedded server of argv[1]. argv[2]: "go" waits for a line on stdin
# first (racing starters); argv[3]: "hold" keeps it open until stdin closes, answering each line with a
# PING's outcome ("True", or the error's class), "exit" returns at once.
CHILD = """
import sys
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from featurehouse.online.embedded import EmbeddedRedis

server = EmbeddedRedis(sys.argv[1])
if sys.argv[2] == "go":
    print("ready", flush=True)
    sys.stdin.readline()
server.start()
client = redis.Redis(unix_socket_path=str(server.socket), socket_timeout=2, retry=Retry(NoBackoff(), 0))
print(client.info("server")["process_id"], int(server.process is not None), flush=True)
if sys.argv[3] == "hold":
    for _ in sys.stdin:
        try:
            print(client.ping(), flush=True)
        except (redis.RedisError, OSError) as e:
            print(type(e).__name__, flush=True)
"""

# Starts the embedded server of argv[1], forks a child that stops it and exits normally (its inherited
# exit handler runs too), prints the child's exit code, then holds it until stdin closes.
FORKER = """
import os
import sys
from featurehouse.online.embedded import EmbeddedRedis

server = EmbeddedRedis(sys.argv[1]).start()
forked = os.fork()
if forked == 0:
    server.stop()
    sys.exit(0)
print(os.waitstatus_to_exitcode(os.waitpid(forked, 0)[1]), flush=True)
sys.stdin.read()
"""


def child(directory: Path, go: bool = False, hold: bool = True) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(directory), "go" if go else "now",
                             "hold" if hold else "exit"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=REPO)


def ping(proc: subprocess.Popen) -> str:
    """Have a holding child PING the server on its own connection: "True", or the error's class name."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("ping\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def started(proc: subprocess.Popen) -> tuple[int, bool]:
    """(the server's pid, whether this child started it), from the child's line."""
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert len(line) == 2, f"child failed (exit {proc.wait()})"
    return int(line[0]), line[1] == "1"


def alive(pid: int) -> bool:
    """Running, and not a zombie (an orphaned server is reaped by whoever adopted it, maybe never)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def servers(socket: Path) -> list[int]:
    """Every live process whose command line names `socket`: the servers on it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(socket) in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll until `predicate` holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def finish(proc: subprocess.Popen) -> int:
    """Close the child's stdin (it exits normally, atexit handlers running) and reap it."""
    assert proc.stdin is not None
    proc.stdin.close()
    return proc.wait(timeout=30)


@pytest.fixture
def server_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for an embedded server; any server left on it by a failing test is killed."""
    directory = tmp_path / "redis"
    directory.mkdir()
    yield directory
    for pid in servers(directory / "redis.sock"):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A project directory: the CLI's embedded server lives under its .featurehouse/redis."""
    yield tmp_path
    for pid in servers(tmp_path / ".featurehouse" / "redis" / "redis.sock"):
        os.kill(pid, signal.SIGKILL)


def online(project: Path, *args: str):
    return CliRunner().invoke(cli, ["--project-dir", str(project), "online", *args], catch_exceptions=False)


def test_a_sigkilled_owners_server_is_adopted_and_stopped(server_dir):
    owner = child(server_dir)
    server, was_started = started(owner)
    assert was_started
    owner.send_signal(signal.SIGKILL)  # no atexit: the server outlives its owner
    owner.wait()
    assert alive(server)
    record = json.loads((server_dir / "owner.json").read_text())
    assert record == {"server_pid": server, "owner_pid": owner.pid}

    adopter = child(server_dir, hold=False)
    assert started(adopter) == (server, False)  # the same server, adopted rather than restarted
    assert adopter.wait(timeout=30) == 0
    assert eventually(lambda: not alive(server)), "the adopter exited and left the server running"
    assert not (server_dir / "owner.json").exists()


def test_an_adopted_server_keeps_its_data_and_is_stopped_by_close(server_dir):
    owner = child(server_dir)
    server, _ = started(owner)
    import redis

    redis.Redis(unix_socket_path=str(server_dir / "redis.sock")).set("kept", "yes")
    owner.send_signal(signal.SIGKILL)
    owner.wait()

    adopted = EmbeddedRedis(server_dir).start()
    assert (adopted.process, adopted.adopted_pid, adopted.owns) == (None, server, True)
    assert json.loads((server_dir / "owner.json").read_text()) == {"server_pid": server, "owner_pid": os.getpid()}
    assert redis.Redis(unix_socket_path=str(adopted.socket)).get("kept") == b"yes"
    adopted.stop()
    assert not alive(server)
    assert servers(server_dir / "redis.sock") == []


def test_a_live_owners_server_is_shared_not_stopped_by_the_sharer(server_dir):
    owner = child(server_dir)
    server, _ = started(owner)
    sharer = EmbeddedRedis(server_dir).start()
    assert not sharer.owns
    sharer.stop()
    assert alive(server)
    assert finish(owner) == 0
    assert eventually(lambda: not alive(server))


def test_online_stop_stops_the_server_whoever_owns_it_and_then_finds_none(project):
    owner = child(project / ".featurehouse" / "redis")
    server, _ = started(owner)
    result = online(project, "stop")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "stopped" in lines[0] and f"pid {server}" in lines[0], result.output
    assert not alive(server)
    assert finish(owner) == 0  # the owner finds its server gone and exits cleanly

    again = online(project, "stop")
    assert again.exit_code == 0, again.output
    assert again.output.strip() == "no embedded Redis running for this project"


def test_online_status_names_the_server_and_its_owner(project):
    assert "not running" in online(project, "status").output
    owner = child(project / ".featurehouse" / "redis")
    server, _ = started(owner)
    alive_owner = online(project, "status")
    assert alive_owner.exit_code == 0
    assert f"pid {server}" in alive_owner.output and f"{owner.pid} (alive)" in alive_owner.output
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    dead_owner = online(project, "status").output
    assert f"{owner.pid} (dead" in dead_owner and "redis.sock" in dead_owner
    assert f"pid {server}" in online(project, "stop").output


def test_a_recorded_pid_reused_by_another_process_is_never_signalled(server_dir, project):
    """The server died with its owner and its pid went to an unrelated process: nothing signals that."""
    decoy = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a dead owner's pid
    for directory in (server_dir, project / ".featurehouse" / "redis"):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "owner.json").write_text(json.dumps({"server_pid": decoy.pid, "owner_pid": gone.pid}))
        (directory / "redis.sock").write_text("")  # a stale socket file
    result = online(project, "stop")
    assert result.output.strip() == "no embedded Redis running for this project", result.output
    server = EmbeddedRedis(server_dir).start()
    assert server.process is not None  # a stale record: a new server started, the decoy left alone
    server.stop()
    assert alive(decoy.pid)
    finish(decoy)


def test_racing_starters_end_with_exactly_one_server(server_dir):
    racers = [child(server_dir, go=True) for _ in range(4)]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
    for racer in racers:  # released together
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    results = [started(racer) for racer in racers]
    assert len({pid for pid, _ in results}) == 1, results
    assert sum(was_started for _, was_started in results) == 1, results
    assert servers(server_dir / "redis.sock") == [results[0][0]]
    assert [finish(racer) for racer in racers] == [0, 0, 0, 0]


# -- users: the last process to leave stops the server ----------------------------------------------


def killed(proc: subprocess.Popen) -> None:
    """SIGKILL: no exit handler runs, so its user entry stays behind until someone prunes it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_the_starter_leaving_does_not_stop_the_server_under_a_sharer(server_dir):
    starter = child(server_dir)
    server, was_started = started(starter)
    sharer = child(server_dir)  # after the starter's line: the server runs, so it shares
    assert was_started and started(sharer) == (server, False)
    assert server_status(server_dir).users == tuple(sorted((starter.pid, sharer.pid)))
    assert finish(starter) == 0
    assert alive(server), "the starter exited and stopped the server its sharer still uses"
    assert ping(sharer) == "True"
    assert server_status(server_dir).users == (sharer.pid,)
    assert finish(sharer) == 0  # the last user out
    assert eventually(lambda: not alive(server)), "the last user exited and left the server running"
    assert not (server_dir / "owner.json").exists()
    assert list((server_dir / "users").iterdir()) == []


def starter_and_sharer(server_dir):
    """Two processes using one server: the one that started it, and one that found it running."""
    starter = child(server_dir)
    server, _ = started(starter)
    sharer = child(server_dir)
    assert started(sharer) == (server, False)
    return starter, server, sharer


def test_a_sigkilled_sharer_is_pruned_and_the_starter_stops_the_server(server_dir):
    starter, server, sharer = starter_and_sharer(server_dir)
    killed(sharer)
    assert finish(starter) == 0
    assert eventually(lambda: not alive(server)), "a dead sharer's entry kept the server running"
    assert list((server_dir / "users").iterdir()) == []


def test_a_sigkilled_starters_server_is_used_by_the_next_and_stopped_when_it_leaves(server_dir):
    starter = child(server_dir)
    server, _ = started(starter)
    killed(starter)
    user = child(server_dir)
    assert started(user) == (server, False)
    assert server_status(server_dir).users == (user.pid,)  # the dead starter pruned
    assert json.loads((server_dir / "owner.json").read_text())["owner_pid"] == user.pid  # adopted
    assert ping(user) == "True"
    assert finish(user) == 0
    assert eventually(lambda: not alive(server))


def test_an_adopter_leaving_does_not_stop_the_server_under_a_sharer_of_the_dead_owner(server_dir):
    starter, server, sharer = starter_and_sharer(server_dir)
    killed(starter)
    adopter = child(server_dir, hold=False)
    assert started(adopter) == (server, False)
    assert adopter.wait(timeout=30) == 0
    assert alive(server) and ping(sharer) == "True"
    assert finish(sharer) == 0
    assert eventually(lambda: not alive(server))


def test_a_forked_child_leaving_does_not_deregister_its_parent(server_dir):
    parent = subprocess.Popen([sys.executable, "-c", FORKER, str(server_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert parent.stdout is not None and parent.stdout.readline().strip() == "0"
    found = server_status(server_dir)
    assert found.running and found.users == (parent.pid,), "the forked child deregistered or stopped its parent's server"
    assert finish(parent) == 0
    assert eventually(lambda: not alive(found.server_pid or 0))


def test_a_user_entry_whose_pid_was_reused_is_pruned(server_dir):
    """A recorded user's pid now names another process (its start time differs): not a user."""
    decoy = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    users = server_dir / "users"
    users.mkdir()
    (users / f"{decoy.pid}.reused").write_text("1\n")  # booted at tick 1: not the decoy
    server = EmbeddedRedis(server_dir).start()
    assert server_status(server_dir).users == (os.getpid(),)
    pid = server.pid
    server.stop()
    assert pid is not None and not alive(pid), "a reused pid's stale entry kept the server running"
    assert not (users / f"{decoy.pid}.reused").exists() and alive(decoy.pid)
    finish(decoy)


def test_two_objects_in_one_process_are_two_users(server_dir):
    first, second = EmbeddedRedis(server_dir).start(), EmbeddedRedis(server_dir).start()
    pid = first.pid
    second.stop()
    assert pid is not None and alive(pid)
    second.stop()  # leaving twice is leaving once
    assert alive(pid) and server_status(server_dir).users == (os.getpid(),)
    first.stop()
    assert not alive(pid)


def test_online_status_lists_the_users_and_online_stop_stops_the_server_under_them(project):
    server_dir = project / ".featurehouse" / "redis"
    starter = child(server_dir)
    server, _ = started(starter)
    sharer = child(server_dir)
    assert started(sharer) == (server, False)
    status = online(project, "status")
    assert status.exit_code == 0, status.output
    assert f"users: pid {min(starter.pid, sharer.pid)}, pid {max(starter.pid, sharer.pid)}" in status.output
    result = online(project, "stop")
    assert result.exit_code == 0, result.output
    assert f"pid {server}" in result.output and "2 users still registered" in result.output, result.output
    assert not alive(server)
    assert ping(sharer) != "True"
    assert [finish(starter), finish(sharer)] == [0, 0]  # they find the server gone and exit cleanly
    assert "not running" in online(project, "status").output
