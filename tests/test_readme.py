"""The README as a test: after the main command, every bash and python block runs as written, in order.

The main command (`featurehouse demo`) runs on a copy of the repository; then each block runs there,
from the repository root as the README leaves a reader: bash blocks in bash (`set -euo pipefail`, the
working directory carried from block to block, as in one terminal), python blocks in one interpreter
(names carried from block to block, as in one notebook). Only the install commands are not run here:
CI runs them itself (`.ci/run`, `.ci/wheel_check.sh`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.projects import REPO

BLOCK = re.compile(r"^```(?P<lang>\w+)\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)
RUN = ("bash", "python")
INSTALL = "python3.11 -m venv"  # the fresh-machine commands: CI runs them, not this test


def readme_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line, language, code) of every fenced block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group("lang"), m.group("code")) for m in BLOCK.finditer(text)]


def runnable(blocks):
    return [(line, lang, code) for line, lang, code in blocks if lang in RUN and INSTALL not in code]


def test_every_shell_and_python_block_is_run_but_the_install_commands():
    blocks = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    languages = {lang for _, lang, _ in blocks}
    assert languages <= {"bash", "python", "yaml", "sql", "text"}, languages  # nothing in a language we do not run or show
    not_run = [code for _, lang, code in blocks if lang in RUN and INSTALL in code]
    assert len(not_run) == 2  # the main command and the test command, run by CI itself
    assert len(runnable(blocks)) >= 7


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    """A copy of the repository after the main command (on the copy's example project)."""
    root = tmp_path_factory.mktemp("readme") / "featurehouse"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".ci-venv", "target", "dbt_packages", "logs", ".featurehouse", "*.duckdb", "__pycache__",
        "*.egg-info", "build", ".pytest_cache"))
    (root / "dbt_project" / "packages.yml").write_text(f"packages:\n  - local: {root}\n")
    result = subprocess.run([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(root / "dbt_project"),
                             "demo", "--no-serve"], cwd=root, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root


def _env() -> dict[str, str]:
    """The reader's shell: this interpreter's scripts first on PATH, the embedded online store (no server)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FEATUREHOUSE_REDIS_URL", "FEATUREHOUSE_PROJECT_DIR", "PROMETHEUS_MULTIPROC_DIR")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_readme_runs_as_written(repo_copy):
    blocks = runnable(readme_blocks((repo_copy / "README.md").read_text(encoding="utf-8")))
    cwd, names = repo_copy, {"__name__": "readme"}
    env = _env()
    here = os.getcwd()
    try:
        for line, lang, code in blocks:
            if lang == "bash":
                marker = repo_copy / ".readme-cwd"
                script = f"set -euo pipefail\ncd {str(cwd)!r}\n{code}\npwd > {str(marker)!r}\n"
                result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=600)
                assert result.returncode == 0, (f"README.md line {line} (bash) exited {result.returncode}:\n{code}\n"
                                                f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
                cwd = Path(marker.read_text().strip())
            else:
                os.chdir(cwd)
                try:
                    exec(compile(code, f"README.md:{line}", "exec"), names)  # noqa: S102 - the README's own code
                except Exception as e:  # noqa: BLE001 - reported naming the block
                    raise AssertionError(f"README.md line {line} (python) raised {type(e).__name__}: {e}\n{code}") from e
    finally:
        os.chdir(here)
        store = names.get("store")
        if store is not None:
            store.close()
        subprocess.run([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(repo_copy / "dbt_project"),
                        "online", "stop"], env=env, capture_output=True, timeout=60)
