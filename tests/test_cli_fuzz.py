"""Fuzz the command line: hypothesis picks commands, arguments and input files; none may end in a traceback.

Every leaf command of `featurehouse` (the click group) is run in-process on the fixture project, built
once, with option values a user might mistype or a hostile input could hold: negative and huge numbers,
empty strings, unicode, and paths to junk files (empty, binary, invalid JSON/YAML/parquet/CSV, deeply
nested JSON). An outcome is fine when it is an exit code a script can act on (0 ok, 1 a guard fired or
a confirmation declined, 2 a usage error, 3 infrastructure) without a Python traceback.
Commands that serve forever (serve, push-api, demo) are left out; `stream` runs with --once.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurehouse.cli.main import cli
from tests import fixture_data
from tests.test_cli import project  # noqa: F401 - the built fixture project, reused

SERVERS = {("serve",), ("push-api",), ("demo",)}
ALWAYS = {("stream",): ["--once"]}  # options that make a long-running command return at once
EXIT_CODES = {0, 1, 2, 3}
FILE_PARAMS = {"spine", "ids", "file", "out", "config", "prometheus", "training_set", "as_model"}
# Parameters that write where they are told: they only ever get names inside the sandbox (the junk folder,
# or a relative name in the working directory the test moves to), never a path that could reach the system.
WRITES = {"out", "prometheus"}
NEEDED = {"spine", "timestamp", "features", "ids", "out", "yes"}  # optional to click, needed to get anywhere
# right values by parameter name, so that one junk value at a time gets past the others' checks
PLAUSIBLE = {"features": ["stats.cnt", "stats.cnt,profile.score", "stats.label_txt@1"], "entity": ["thing"],
             "entity_type": ["thing"], "keys": ["card_id=1;merchant=m", "card_id=01;merchant=m",
                                                "card_id=" + "0" * 5000 + "1;merchant=m"],
             "timestamp": ["as_of"], "view": ["stats", "stats@1", "profile"], "select": ["stats", "profile"],
             "restate": ["stats"], "view_at_version": ["stats@1", "profile@1"], "name": ["stats", "profile.score"],
             "target": ["stats.cnt", "profile"], "ref": ["m@1"], "version": ["1", "2"], "sample": ["10"],
             "spine": ["{junk}/spine.parquet", "spine"], "ids": ["{junk}/ids.txt", "{junk}/spine.parquet"],
             "file": ["{junk}/rows.json"], "prometheus": ["{junk}/fresh.prom", "{junk}/bad.json/under_a_file.prom"],
             "out": ["{junk}/out.parquet", "{junk}/out.csv", "{junk}/bad.json/under_a_file.parquet",
                     "{junk}/" + "x" * 300 + ".parquet"]}

NAMES = ["stats", "profile", "thing", "stats.cnt", "stats.label_txt", "profile.score", "stats@1", "stats@2",
         "stats.cnt@1", "stats.cnt,profile.score", "card_id=1;merchant=x", "card_id=01;merchant=%3B", "spine",
         "as_of", "card_id", "fraud@1", "m@0", "@", "a.b.c", "stats@-1", "stats@99999999999999999999"]
NUMBERS = ["0", "-1", "1", "-0", "1.5", "-1e9", "1e309", "nan", "inf", "-inf", "99999999999999999999",
           str(2**63), "0x10", "1_000", " 7 "]
TIMES = ["7d", "1h", "-1d", "0s", "99999999999d", "1y", "d", "2026-01-01", "2026-13-45", "0001-01-01",
         "9999-12-31T23:59:59", "1970-01-01T00:00:00Z", "yesterday"]
ODD = ["", " ", "-", "--", "ü日本", "\u202e\u0301", "'; DROP TABLE stats; --", "sub/../up", "%s%n",
       "a" * 5000, "\t\n", "{{ var('x') }}"]


def junk_files(directory: Path) -> list[str]:
    """Inputs that are wrong in every way a file can be, plus a few right ones to get past the first check."""
    directory.mkdir(parents=True, exist_ok=True)
    binary = bytes(range(256)) * 4
    content: dict[str, bytes | str] = {
        "empty.json": "", "empty.parquet": "", "empty.csv": "", "empty.yml": "",
        "binary.json": binary, "binary.parquet": binary, "binary.csv": binary, "binary.yml": binary,
        "bad.json": "{not json", "nested.json": "[" * 100_000 + "]" * 100_000,
        "deep_object.json": '{"a":' * 5000 + "1" + "}" * 5000, "scalar.json": "42", "null.json": "null",
        "rows_wrong.json": json.dumps([{"card_id": [1], "merchant": {"x": 1}, "event_time": "soon", "cnt": 1e400}]),
        "rows_huge.json": '[{"card_id": 1' + "0" * 400 + ', "merchant": "m", "event_time": 1e20}]',
        "utf16.json": "\ufeff[]".encode("utf-16"), "bad.yml": "a: [b\n", "tabs.yml": "\t- x\n",
        "list.yml": "- 1\n- 2\n", "anchors.yml": "a: &a [*a]\n", "bad.parquet": b"PAR1" + binary + b"PAR1",
        "bad.csv": 'card_id,merchant\n1\n"unterminated', "latin1.csv": b"card_id,merchant\n1,caf\xe9\n",
        "dup_columns.csv": "card_id,card_id,as_of\n1,2,2026-01-01\n", "no_ext": binary,
        "ids.txt": "card_id=1;merchant=m\ncard_id=2;merchant=x\n",
        "rows.json": json.dumps([{"card_id": 1, "merchant": "m", "event_time": "2026-01-01T00:00:00", "cnt": 3}]),
    }
    for name, data in content.items():
        path = directory / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    spine = pa.table({"card_id": [0, 1], "merchant": ["ü", "x"],
                      "as_of": pa.array([fixture_data.INSTANTS[6]] * 2, pa.timestamp("us"))})
    pq.write_table(spine, directory / "spine.parquet")
    pq.write_table(pa.table({"card_id": ["a"], "as_of": [1.5]}), directory / "wrong_types.parquet")
    pq.write_table(pa.table({"x": pa.array([], pa.int64())}), directory / "no_rows.parquet")
    (directory / "a_dir").mkdir(exist_ok=True)
    return sorted(str(p) for p in directory.iterdir()) + [str(directory / "missing.parquet"),
                                                          str(directory / "no" / "such" / "dir" / "out.parquet")]


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    """Every runnable command by its path (`("features", "list")`), servers left out."""
    out = {}
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            out.update(leaf_commands(command, path))
        elif path not in SERVERS:
            out[path] = command
    return out


COMMANDS = leaf_commands(cli)


def values(files: list[str]) -> st.SearchStrategy[str]:
    """Any junk a parameter may get. No NUL and no lone surrogates: a real argv cannot hold them. No
    absolute path but the junk files', in case a parameter writes where it is told."""
    return st.one_of(st.sampled_from(NAMES), st.sampled_from(NUMBERS), st.sampled_from(TIMES),
                     st.sampled_from(ODD), st.sampled_from(files),
                     st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"), max_size=12))


def sandboxed(files: list[str]) -> st.SearchStrategy[str]:
    """Values for a parameter that writes: junk file paths, or relative names with no way out of the
    working directory (no `/`, not `.` or `..`)."""
    relative = st.one_of(st.sampled_from(NAMES + NUMBERS + TIMES), st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"), max_size=12))
    return st.one_of(st.sampled_from(files), relative.filter(lambda name: "/" not in name and name not in {".", ".."}))


def takes_a_file(param: click.Parameter) -> bool:
    """Parameters that read or write files (some are text typed: a spine is a file or a model name)."""
    return isinstance(param.type, (click.Path, click.File)) or param.name in FILE_PARAMS


@st.composite
def invocations(draw, files: list[str]) -> list[str]:
    """A command path, then its parameters (any may be left out or given junk) in a random order."""
    path = draw(st.sampled_from(sorted(COMMANDS)))
    value = values(files)
    path_value = st.one_of(st.sampled_from(files), value)
    junk = str(Path(files[0]).parent)
    groups: list[list[str]] = [list(ALWAYS.get(path, []))]
    for param in COMMANDS[path].params:
        # a required parameter is now and then left out, an optional one mostly
        if draw(st.integers(0, 5)) < (1 if param.required or param.name in NEEDED else 4):
            continue
        given = path_value if takes_a_file(param) else value
        if param.name in WRITES:
            given = sandboxed(files)
        if param.name in PLAUSIBLE and draw(st.integers(0, 2)):  # two times in three, a right value
            given = st.sampled_from([v.format(junk=junk) for v in PLAUSIBLE[param.name]])
        if isinstance(param, click.Argument):
            count = param.nargs if param.nargs > 0 else draw(st.integers(0, 3))
            groups.append([draw(given) for _ in range(count)])
        elif isinstance(param, click.Option) and not param.hidden:
            name = draw(st.sampled_from(param.opts))
            groups.append([name] if param.is_flag else [name, draw(given)])
    if not draw(st.integers(0, 5)):
        groups.append([draw(value)])  # a stray extra argument
    ordered = draw(st.permutations(groups))
    return [*path, *(token for group in ordered for token in group)]


@pytest.fixture(scope="module")
def fuzz_env(project, embedded_redis, tmp_path_factory):  # noqa: F811 - the imported fixture
    """The built project, its online store a database of the session's Redis, and the junk files' folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FEATUREHOUSE_REDIS_URL", f"{embedded_redis.url}?db=7")
    mp.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    try:
        mp.chdir(tmp_path_factory.mktemp("cwd"))  # relative output names land in the sandbox
        yield project, tmp_path_factory.mktemp("junk")
    finally:
        mp.undo()


def problem(project_dir: Path, args: list[str]) -> str | None:
    """What is wrong with running `featurehouse args` (None: an exit code a script can act on, no traceback)."""
    result = CliRunner().invoke(cli, ["--project-dir", str(project_dir), *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"featurehouse {args!r} raised {result.exception!r}\n{result.output[-2000:]}"
    if result.exit_code not in EXIT_CODES:
        return f"featurehouse {args!r} exited {result.exit_code}\n{result.output[-2000:]}"
    if "Traceback (most recent call last)" in result.output:
        return f"featurehouse {args!r} printed a traceback\n{result.output[-2000:]}"
    return None


def test_the_fuzzer_reaches_every_command():
    assert {("build",), ("push",), ("forget",), ("training-set",), ("features", "list")} <= set(COMMANDS)
    assert not SERVERS & set(COMMANDS)


def test_no_arguments_or_input_file_make_the_cli_fail_with_a_traceback(fuzz_env):
    project_dir, junk = fuzz_env
    files = junk_files(junk)

    @given(data=st.data())
    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large])
    def run(data):
        args = data.draw(invocations(files), label="args")
        junk_files(junk)  # an --out of an earlier example may have overwritten one
        found = problem(project_dir, args)
        assert found is None, found

    run()


# The commands that read a user's file, each with every junk file in turn (`{file}`): a deterministic sweep
READERS = {
    "push": ["push", "stats", "{file}"],
    "training-set --spine": ["training-set", "--spine", "{file}", "--timestamp", "as_of", "--features", "stats.cnt",
                             "--entity", "thing", "--no-record", "--out", "{junk}/ts_out.parquet"],
    "batch-features --ids": ["batch-features", "--ids", "{file}", "--features", "stats.cnt", "--entity", "thing",
                             "--out", "{junk}/batch_out.parquet"],
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_junk_input_file_is_one_line_not_a_traceback(fuzz_env, reader):
    project_dir, junk = fuzz_env
    problems = []
    for file in junk_files(junk):
        args = [arg.format(file=file, junk=junk) for arg in READERS[reader]]
        found = problem(project_dir, args)
        if found:
            problems.append(found.splitlines()[0])
    assert not problems, "\n".join(problems)
