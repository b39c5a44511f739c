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
    These commands act on it directly; `acl` prints Redis users for a production server instead.
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


@online.command()
@click.option("--format", "fmt", type=click.Choice(["setuser", "acl-file"]), default="setuser", show_default=True,
              help="ACL SETUSER commands (for redis-cli), or lines of an ACL file (aclfile in redis.conf).")
@click.option("--prefix", default="featurehouse", show_default=True, help="User names are PREFIX-serving, PREFIX-writer, "
              "PREFIX-push.")
@click.option("--push-user", is_flag=True, help="Also a push-only user, for `featurehouse push-api`.")
@click.option("--serving-password-env", metavar="NAME", help="Environment variable holding the serving user's password.")
@click.option("--writer-password-env", metavar="NAME", help="Environment variable holding the writer user's password.")
@click.option("--push-password-env", metavar="NAME", help="Environment variable holding the push user's password.")
@click.option("--no-definitions-api", is_flag=True,
              help="Serving may not record pending definitions (POST /v1/feature-definitions then answers 503).")
@click.option("--serving-push", is_flag=True,
              help="Serving may also append pushed rows: for `featurehouse serve` with its setting `push: true`.")
@click.option("--cluster", is_flag=True, help="Also what redis-py's Redis Cluster client needs (slot map, command table).")
@click.option("--allow-select", is_flag=True, help="Allow SELECT, for a Redis URL naming a database other than 0.")
@click.option("--client-setinfo", is_flag=True, help="Allow CLIENT SETINFO (Redis 7.2+, Valkey; Redis 7.0 refuses the rule).")
@click.option("--explain", is_flag=True, help="Print each role's rules and why it needs them, instead of the ACL.")
def acl(fmt: str, prefix: str, push_user: bool, serving_password_env: str | None, writer_password_env: str | None,
        push_password_env: str | None, no_definitions_api: bool, serving_push: bool, cluster: bool,
        allow_select: bool, client_setinfo: bool, explain: bool) -> None:
    """Print Redis users for featurehouse: serving (read-only), writer, and optionally push.

    Each user may run only the commands featurehouse runs in its role, on featurehouse's keys only; no
    administrative command. Passwords come from the environment variables named by --*-password-env, or
    are generated and printed once, on stderr; the ACL holds only their SHA-256 (`#<hash>`). The ACL
    goes to stdout: pipe it to `redis-cli` as an admin user (on every node of a cluster), or save it
    as an ACL file. Nothing is written anywhere. See docs/security.md, "Redis users (ACL)".
    """
    import os

    from featurehouse.online import acl as users

    made = users.roles(prefix, push=push_user, definitions=not no_definitions_api, cluster=cluster,
                       select=allow_select, client_setinfo=client_setinfo, serving_push=serving_push)
    if explain:
        for line in users.explain(made):
            click.echo(line)
        return
    sources = {"serving": serving_password_env, "writer": writer_password_env, "push": push_password_env}
    if push_password_env and not push_user:
        raise users.AclError("--push-password-env is for the push user: add --push-user")
    hashes: dict[str, str] = {}
    generated: list[tuple[users.Role, str]] = []
    for role in made:
        name = sources[role.role]
        if name:
            value = os.environ.get(name)
            if not value:
                raise users.AclError(f"--{role.role}-password-env {name}: the environment variable is unset or empty")
            hashes[role.role] = users.password_hash(value)
        else:
            password = users.new_password()
            generated.append((role, password))
            hashes[role.role] = users.password_hash(password)
    for line in users.render(made, hashes, "acl-file" if fmt == "acl-file" else "setuser"):
        click.echo(line)
    for role, password in generated:
        click.echo(f"{role.user}: generated password, shown this once (the ACL keeps only its hash): {password}", err=True)
    if generated:
        click.echo("connect with redis://USER:PASSWORD@HOST:PORT (rediss:// for TLS) in FEATUREHOUSE_REDIS_URL", err=True)
