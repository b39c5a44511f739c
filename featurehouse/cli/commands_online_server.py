"""`featurehouse online stop` and `online status`: the project's embedded Redis, whoever owns or uses it."""

from __future__ import annotations

import click
from rich.markup import escape

from featurehouse.cli.context import CliContext
from featurehouse.online.embedded import STOP_TIMEOUT_S, ServerStatus, project_server_dir, server_status, stop_server


@click.group()
def online() -> None:
    """The project's embedded Redis: the online store when FEATUREHOUSE_REDIS_URL is unset.

    Every featurehouse process using it registers as a user; the last to exit stops it, whoever started
    it. Users that died (SIGKILL) are pruned, and a server left with none is adopted by the next command.
    These commands act on it directly.
    """


def _users(pids: tuple[int, ...]) -> str:
    """The living users, for status: who keeps the server running."""
    if not pids:
        return "none living (the next featurehouse command to use it stops it when it exits)"
    return ", ".join(f"pid {pid}" for pid in pids)


def _still_registered(pids: tuple[int, ...]) -> str:
    """For stop: who loses the server (they keep running and leave it at exit as usual)."""
    if not pids:
        return "no users registered"
    return f"{len(pids)} user{'s' if len(pids) != 1 else ''} still registered: {_users(pids)}"


def _owner(status: ServerStatus) -> str:
    if status.owner_pid is None:
        return "unknown (no owner record names this server)"
    if status.owner_alive:
        return f"pid {status.owner_pid} (alive)"
    return f"pid {status.owner_pid} (dead: the next featurehouse command adopts the server)"


@online.command()
@click.option("--timeout", type=click.FloatRange(min=0.1, max=600.0), default=STOP_TIMEOUT_S, show_default=True,
              help="Seconds to wait after SIGTERM (which flushes the append-only file) before SIGKILL.")
@click.pass_obj
def stop(obj: CliContext, timeout: float) -> None:
    """Stop the project's embedded Redis, whoever owns or uses it.

    SIGTERM, then SIGKILL after --timeout; its owner record goes too. Processes still using it lose it
    (they are named). Exit 0 whether or not one ran.
    """
    stopped = stop_server(project_server_dir(obj.project_dir), timeout)
    if stopped is None:
        obj.console.print("no embedded Redis running for this project")
        return
    owner = f"owner pid {stopped.owner_pid}" if stopped.owner_pid is not None else "no recorded owner"
    obj.console.print(f"stopped the embedded Redis (pid {stopped.server_pid}, {owner}, {_still_registered(stopped.users)}) "
                      f"on {escape(str(stopped.socket))}")


@online.command()
@click.pass_obj
def status(obj: CliContext) -> None:
    """Show the embedded Redis: running or not, pid, owner, users.

    The owner is the process that started or adopted it, alive or dead; the users are the living
    processes using it (the last to exit stops it); then its socket and data dir.
    """
    found = server_status(project_server_dir(obj.project_dir))
    obj.console.print(f"embedded Redis: running, pid {found.server_pid}" if found.running else "embedded Redis: not running")
    if found.running:
        obj.console.print(f"owner: {_owner(found)}")
        obj.console.print(f"users: {_users(found.users)}")
    obj.console.print(f"socket: {escape(str(found.socket))}")
    obj.console.print(f"data dir: {escape(str(found.directory))}")
