"""The `featurehouse` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from featurehouse.cli import (
    commands_access,
    commands_batch,
    commands_demo,
    commands_docs,
    commands_features,
    commands_guard,
    commands_lineage,
    commands_migrate,
    commands_online,
    commands_online_server,
    commands_serve,
    commands_stream,
    commands_training,
    commands_versions,
)
from featurehouse.cli.context import CliContext, FeaturehouseGroup


@click.group(cls=FeaturehouseGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True,
              envvar="FEATUREHOUSE_PROJECT_DIR", help="The dbt project holding your feature views.")
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where profiles.yml is (default: the project dir if it has one, else ~/.dbt).")
@click.option("--target", default=None, envvar="FEATUREHOUSE_TARGET", help="The dbt profile target to use.")
@click.version_option(package_name="featurehouse")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path, profiles_dir: Path | None, target: str | None) -> None:
    """featurehouse: a SQL-first feature store on dbt.

    Feature views are dbt models with a `meta.featurehouse` block; training sets are point-in-time
    joins generated as SQL and run in your warehouse. Start with `featurehouse demo`.
    """
    ctx.obj = CliContext(project_dir, profiles_dir, target)


cli.add_command(commands_features.init)
cli.add_command(commands_features.build)
cli.add_command(commands_features.features)
cli.add_command(commands_training.training_set)
cli.add_command(commands_batch.batch_features)
cli.add_command(commands_online.sync)
cli.add_command(commands_online.forget)
cli.add_command(commands_online.retention)
cli.add_command(commands_online_server.online)
cli.add_command(commands_stream.push)
cli.add_command(commands_stream.stream)
cli.add_command(commands_stream.push_api)
cli.add_command(commands_serve.serve)
cli.add_command(commands_versions.backfill)
cli.add_command(commands_versions.promote)
cli.add_command(commands_versions.versions)
cli.add_command(commands_guard.check)
cli.add_command(commands_guard.freshness)
cli.add_command(commands_guard.parity)
cli.add_command(commands_guard.skew)
cli.add_command(commands_guard.drift)
cli.add_command(commands_guard.deploy_check)
cli.add_command(commands_lineage.lineage)
cli.add_command(commands_lineage.model)
cli.add_command(commands_demo.demo)
cli.add_command(commands_docs.docs)
cli.add_command(commands_migrate.import_feast)
cli.add_command(commands_access.access)
cli.add_command(commands_access.token)
cli.add_command(commands_access.audit)


def main() -> None:
    """The `featurehouse` command. Once the command is done, what Python's shutdown would do that
    matters is done here (non-daemon threads joined, exit handlers run, output flushed) and the process
    ends with os._exit: finalizing the interpreter kills daemon threads where they stand, and one inside
    a native library (DuckDB's C++) at that moment aborts the whole process (SIGABRT, exit 134) after
    its work succeeded, which a scheduler would read as a failure."""
    try:
        cli(prog_name="featurehouse")
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    _leave(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message"): printed, exit 1, as Python does
    return 1


def _leave(code: int) -> None:
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # joins non-daemon threads, as Python's exit does
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
