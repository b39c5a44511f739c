"""The wheel carries the dbt package and the example project; one version for both packages; the version check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import featurehouse
from featurehouse import packaging
from featurehouse.cli.main import cli
from featurehouse.errors import ProjectError
from featurehouse.project import DbtProject

REPO = Path(__file__).resolve().parent.parent
BUNDLE = "featurehouse/_bundled/"
# what dbt, featurehouse and the demo write into the example project: never in the wheel
JUNK = ["target/manifest.json", "dbt_packages/featurehouse/dbt_project.yml", "logs/dbt.log",
        ".featurehouse/warehouse.duckdb", ".featurehouse/redis/dump.rdb", "data/transactions.parquet", "stray.duckdb",
        "stray.duckdb.wal", "models/__pycache__/x.pyc", "package-lock.yml"]


def _source_copy(dest: Path) -> Path:
    """The checkout's files as a fresh clone has them (setuptools writes build/ and *.egg-info into the tree it
    builds, so the wheel is built from this copy, never from the checkout)."""
    root_skip = {".git", "build", "dist", ".ci-venv", ".venv", "venv", ".pytest_cache", ".hypothesis", ".ruff_cache",
                 "bench", "docs"}
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "target", "dbt_packages", "logs", ".featurehouse",
                                  "*.duckdb", "*.duckdb.wal", "data")

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(junk(folder, names))
        return skipped | (set(names) & root_skip) if Path(folder) == REPO else skipped

    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """featurehouse's wheel, built by pip out of tree from a copy whose example project holds the files dbt and the
    demo write (the build must leave them out)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _source_copy(tmp / "src")
    for rel in JUNK:
        path = src / "dbt_project" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("junk\n")
    (src / "macros" / "__pycache__").mkdir()
    (src / "macros" / "__pycache__" / "x.pyc").write_text("junk\n")
    before = sorted(p.name for p in REPO.iterdir())
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp / "dist")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in REPO.iterdir()) == before  # nothing written into the checkout
    (built,) = (tmp / "dist").glob("featurehouse-*.whl")
    return built


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def _shipped(folder: Path) -> set[str]:
    """A folder's files as the build bundles them: without what dbt or the demo write."""
    skip = {"target", "dbt_packages", "logs", ".featurehouse", "data", "__pycache__"}
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and not (set(p.relative_to(folder).parts) & skip)
            and not p.name.endswith((".duckdb", ".duckdb.wal", ".parquet", ".pyc")) and p.name != "package-lock.yml"}


def test_the_wheel_carries_the_dbt_package_and_the_example(wheel):
    names = _names(wheel)
    bundled = {n.removeprefix(BUNDLE) for n in names if n.startswith(BUNDLE)}
    package = {"dbt_package/dbt_project.yml"} | {f"dbt_package/macros/{p}" for p in _shipped(REPO / "macros")} \
        | {f"dbt_package/models/{p}" for p in _shipped(REPO / "models")}
    example = {f"example/{p}" for p in _shipped(REPO / "dbt_project")}
    assert {"dbt_package/macros/point_in_time_join.sql", "dbt_package/models/feature_definitions.sql",
            "example/dbt_project.yml", "example/profiles.yml", "example/packages.yml",
            "example/models/features/features.yml", "example/tests/generic/not_before.sql"} <= bundled
    assert bundled == package | example
    for name in names:  # no state of a run, no Python tests, no build junk anywhere
        parts = name.split("/")
        assert parts[0] != "tests", name
        assert not {"target", "dbt_packages", "logs", ".featurehouse", "__pycache__"} & set(parts[:-1]), name
        assert not name.endswith((".duckdb", ".duckdb.wal", ".parquet", ".pyc", "package-lock.yml")), name
    with zipfile.ZipFile(wheel) as z:
        assert z.read(BUNDLE + "dbt_package/dbt_project.yml") == (REPO / "dbt_project.yml").read_bytes()
        assert z.read(BUNDLE + "example/models/features/features.yml") == \
            (REPO / "dbt_project/models/features/features.yml").read_bytes()


def test_the_wheel_names_the_repository_and_one_version(wheel):
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = z.read(meta).decode()
    assert f"\nVersion: {featurehouse.__version__}\n" in metadata
    assert "\nProject-URL: Repository, https://github.com/featurehouse/featurehouse\n" in metadata


def test_python_and_dbt_package_versions_are_one():
    """pyproject takes its version from featurehouse.__version__; the dbt package's must equal it (the release tag
    v<version> that `featurehouse init` pins holds both)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "featurehouse.__version__"}
    assert str(yaml.safe_load((REPO / "dbt_project.yml").read_text())["version"]) == featurehouse.__version__
    assert packaging.repository_url() == pyproject["project"]["urls"]["Repository"]


def test_a_checkout_is_its_own_dbt_package_and_example():
    assert packaging.checkout_root() == REPO
    assert packaging.dbt_package_dir() == REPO
    assert packaging.example_project_dir() == REPO / "dbt_project"
    project, where = packaging.demo_project(None)
    assert project == REPO / "dbt_project" and "this checkout's dbt_project/" in where


@pytest.fixture
def installed(wheel, tmp_path, monkeypatch):
    """featurehouse/_bundled/ as a wheel installs it, in place of the checkout's files."""
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "site", [n for n in z.namelist() if n.startswith(BUNDLE)])
    bundled = tmp_path / "site" / BUNDLE
    monkeypatch.setattr(packaging, "BUNDLED", bundled)
    return bundled


def test_an_installed_wheel_demo_runs_a_copy_of_the_example_in_the_current_directory(installed, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert packaging.dbt_package_dir() == installed / "dbt_package"
    project, where = packaging.demo_project(None)
    assert project == work / "featurehouse_demo"
    assert f"example project: {project} (copied from the featurehouse package" in where
    assert _shipped(project) - {"packages.yml", ".featurehouse-example"} == _shipped(installed / "example") - {"packages.yml"}
    assert yaml.safe_load((project / "packages.yml").read_text()) == {
        "packages": [{"local": str(installed / "dbt_package")}]}
    # a second run reuses it (the user's state and edits stay); a new featurehouse version refreshes it
    (project / "models" / "mine.sql").write_text("select 1 as x\n")
    again, where = packaging.demo_project(None)
    assert again == project and "reused" in where and (project / "models" / "mine.sql").is_file()
    (project / ".featurehouse-example").write_text("0.0.1\n")
    assert "refreshed" in packaging.demo_project(None)[1]
    # someone else's folder of that name is left alone
    shutil.rmtree(project)
    (work / "featurehouse_demo").mkdir()
    (work / "featurehouse_demo" / "dbt_project.yml").write_text("name: mine\n")
    with pytest.raises(ProjectError, match="is not featurehouse's example project"):
        packaging.demo_project(None)


def _project_with_installed_package(tmp: Path, version: str, packages_yml: str = "") -> Path:
    project = tmp / "shop"
    (project / "dbt_packages" / "featurehouse").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    if packages_yml:
        (project / "packages.yml").write_text(packages_yml)
    (project / "dbt_packages" / "featurehouse" / "dbt_project.yml").write_text(
        f"name: featurehouse\nversion: \"{version}\"\n")
    return project


def test_a_dbt_package_of_another_version_is_one_error_naming_both_and_the_fixes(tmp_path):
    project = _project_with_installed_package(tmp_path, "0.0.9", "packages:\n  - git: x\n    revision: v0.0.9\n")
    with pytest.raises(ProjectError) as e:
        DbtProject(project).manifest()  # before dbt parses anything
    message = str(e.value)
    assert "\n" not in message
    assert "featurehouse dbt package" in message and "version 0.0.9" in message
    assert f"featurehouse Python package is version {featurehouse.__version__}" in message
    assert f"revision: v{featurehouse.__version__}" in message and "dbt deps" in message
    assert "pip install featurehouse==0.0.9" in message
    result = CliRunner().invoke(cli, ["--project-dir", str(project), "features", "list"])
    assert result.exit_code == 2 and "version 0.0.9" in result.output


def test_the_installed_dbt_package_of_this_version_or_this_very_package_passes(tmp_path):
    project = _project_with_installed_package(tmp_path, featurehouse.__version__)
    packaging.check_dbt_package(project, {})
    # a `local:` entry on this checkout (dbt deps links it) always matches, whatever its version says
    linked = tmp_path / "linked"
    (linked / "dbt_packages").mkdir(parents=True)
    (linked / "dbt_packages" / "featurehouse").symlink_to(REPO, target_is_directory=True)
    packaging.check_dbt_package(linked, {})
    # the project's own packages-install-path is where dbt put it
    moved = _project_with_installed_package(tmp_path / "moved", "0.0.1")
    (moved / "dbt_packages").rename(moved / "vendor")
    with pytest.raises(ProjectError, match="version 0.0.1"):
        packaging.check_dbt_package(moved, {"packages-install-path": "vendor"})


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_the_wheel_installed_in_a_fresh_venv_runs_the_demo_from_an_empty_directory(wheel):
    """.ci/wheel_check.sh on the built wheel: a fresh venv (dependencies through a .pth on this environment), the
    demo from an empty directory, init on a new project (~25 s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATUREHOUSE_", "DBT_"))}
    out = subprocess.run(["bash", str(REPO / ".ci" / "wheel_check.sh"), sys.executable], env=dict(env, WHEEL=str(wheel)),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "wheel check passed" in out.stdout
