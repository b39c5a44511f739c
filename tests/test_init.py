"""`featurehouse init`: the vars block, the packages.yml entry and .gitignore, with the user's files kept as written."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import featurehouse
from featurehouse import packaging
from featurehouse.cli.main import cli
from featurehouse.project import DbtProject

REPO = Path(__file__).resolve().parent.parent
VERSION = featurehouse.__version__
GIT = {"git": "https://github.com/featurehouse/featurehouse.git", "revision": f"v{VERSION}"}
ENTITIES = {"entities": {"user": ["user_id"]}}

DBT_INIT = """
# Name your project! Project names should contain only lowercase characters
# and underscores.
name: 'jaffle_shop'
version: '1.0.0'

# This setting configures which "profile" dbt uses for this project.
profile: 'jaffle_shop'

model-paths: ["models"]
analysis-paths: ["analyses"]

clean-targets:         # directories to be removed by `dbt clean`
  - "target"
  - "dbt_packages"


# Configuring models
models:
  jaffle_shop:
    # Config indicated by + and applies to all files under models/example/
    example:
      +materialized: view
"""


def init(project: Path, *args: str):
    return CliRunner().invoke(cli, ["--project-dir", str(project), "init", *args])


def files(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(project.iterdir()) if p.is_file()}


def only_added(before: str, after: str) -> None:
    """`after` is `before` with lines inserted or, within a line, text inserted: nothing of the user's is lost."""
    for op, i1, i2, _, _ in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        assert op in ("equal", "insert"), (op, before[i1:i2])


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "dbt_project.yml").write_text(DBT_INIT)
    return tmp_path


def test_a_project_without_vars_gets_the_block_the_git_entry_and_the_gitignore(project):
    result = init(project)
    assert result.exit_code == 0, result.output
    config = (project / "dbt_project.yml").read_text()
    assert config.startswith(DBT_INIT)  # appended: the user's file is untouched above
    assert yaml.safe_load(config)["vars"] == {"featurehouse": ENTITIES}
    packages = (project / "packages.yml").read_text()
    assert yaml.safe_load(packages) == {"packages": [GIT]}
    assert "no subdirectory" in packages  # the dbt package is the repository root
    assert (project / ".gitignore").read_text().splitlines()[-1] == ".featurehouse/"
    assert "dbt deps" in result.output
    assert DbtProject(project).featurehouse_vars == ENTITIES


def test_block_vars_keep_comments_quotes_and_layout(tmp_path):
    text = ("name: shop\nvars:\n  # dates\n  start_date: '2018-01-01'   # first day\n  regions:\n    - eu\n    - us\n"
            "# models below\nmodels:\n  shop:\n    +materialized: table\n")
    (tmp_path / "dbt_project.yml").write_text(text)
    assert init(tmp_path).exit_code == 0
    written = (tmp_path / "dbt_project.yml").read_text()
    only_added(text, written)
    assert "  start_date: '2018-01-01'   # first day\n" in written
    assert "    - us\n  featurehouse:\n    entities:\n" in written  # inside vars, at its indentation
    assert yaml.safe_load(written)["vars"] == {"start_date": "2018-01-01", "regions": ["eu", "us"], "featurehouse": ENTITIES}


def test_flow_style_vars_stay_flow_style_and_valid(tmp_path):
    """The issue's case: `vars: {start_date: "2018-01-01"}` was reported done and written as invalid YAML."""
    text = '# shop\nname: shop  # ours\nprofile: shop\nvars: {start_date: "2018-01-01"}  # dates\nmodels:\n  shop: {}\n'
    (tmp_path / "dbt_project.yml").write_text(text)
    result = init(tmp_path)
    assert result.exit_code == 0, result.output
    written = (tmp_path / "dbt_project.yml").read_text()
    assert written == text.replace('"2018-01-01"}', '"2018-01-01", featurehouse: {entities: {user: [user_id]}}}')
    assert yaml.safe_load(written)["vars"] == {"start_date": "2018-01-01", "featurehouse": ENTITIES}
    assert DbtProject(tmp_path).featurehouse_vars == ENTITIES  # the next run reads it


@pytest.mark.parametrize("vars_text, expected", [
    ("vars:\n", "vars:\n  featurehouse:\n    entities:\n"),
    ("vars: ~  # later\n", "vars: {featurehouse: {entities: {user: [user_id]}}}  # later\n"),
    ("vars: {}\n", "vars: {featurehouse: {entities: {user: [user_id]}}}\n"),
    ("vars: {a: 1,\n  b: [2, 3]  # bee\n}\n", "  b: [2, 3], featurehouse: {entities: {user: [user_id]}}  # bee\n}\n"),
])
def test_empty_and_multiline_vars(tmp_path, vars_text, expected):
    (tmp_path / "dbt_project.yml").write_text("name: shop\n" + vars_text + "models: {}\n")
    assert init(tmp_path).exit_code == 0
    written = (tmp_path / "dbt_project.yml").read_text()
    assert expected in written
    assert yaml.safe_load(written)["vars"]["featurehouse"] == ENTITIES and yaml.safe_load(written)["models"] == {}


def test_existing_packages_keep_their_comments_and_the_entry_is_appended(project):
    text = ("# our packages\npackages:\n  - package: dbt-labs/dbt_utils   # utils\n    version: [\">=1.0.0\", \"<2.0.0\"]\n\n"
            "  # codegen, for docs\n  - package: dbt-labs/codegen\n    version: 0.12.1\n# the end\n")
    (project / "packages.yml").write_text(text)
    assert init(project).exit_code == 0
    written = (project / "packages.yml").read_text()
    only_added(text, written)
    assert written.endswith('    version: 0.12.1\n  # featurehouse\'s dbt package: the repository root (no subdirectory), '
                            'at the installed featurehouse\'s tag\n  - git: "https://github.com/featurehouse/featurehouse.git"\n'
                            f"    revision: v{VERSION}\n# the end\n")
    assert yaml.safe_load(written)["packages"][2] == GIT


def test_flow_and_indentless_package_lists(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: shop\n")
    (tmp_path / "packages.yml").write_text("packages: [{package: a/b, version: 1}]  # deps\n")
    assert init(tmp_path).exit_code == 0
    assert (tmp_path / "packages.yml").read_text() == (
        'packages: [{package: a/b, version: 1}, {git: "https://github.com/featurehouse/featurehouse.git", '
        f'revision: v{VERSION}}}]  # deps\n')
    (tmp_path / "packages.yml").write_text("packages:\n- package: a/b\n  version: 1\n")
    assert init(tmp_path).exit_code == 0
    assert (tmp_path / "packages.yml").read_text().endswith(
        f'- git: "https://github.com/featurehouse/featurehouse.git"\n  revision: v{VERSION}\n')


@pytest.mark.parametrize("config, packages, culprit, problem", [
    ("name: shop\nvars: [a, b]\n", None, "dbt_project.yml", "`vars:` is a list, not a mapping"),
    ("name: shop\nvars: 3\n", None, "dbt_project.yml", "`vars:` is a int, not a mapping"),
    ('name: shop\nvars: {start_date: "2018-01-01"\nmodels: {}\n', None, "dbt_project.yml", "not valid YAML at line 3"),
    ("- name: shop\n", None, "dbt_project.yml", "not a mapping of dbt project settings"),
    ("name: shop\n", "packages: {a: 1}\n", "packages.yml", "`packages:` is not a list"),
    ("name: shop\n", "packages:\n  - local: ../a\n  - [oops\n", "packages.yml", "not valid YAML"),
    ("name: shop\n", "packages:\n  - git: https://github.com/featurehouse/featurehouse\n"
                     "  - git: git@github.com:featurehouse/featurehouse.git\n",
     "packages.yml", "lists featurehouse more than once"),
])
def test_a_file_init_cannot_merge_is_one_line_exit_2_and_nothing_is_written(tmp_path, config, packages, culprit, problem):
    (tmp_path / "dbt_project.yml").write_text(config)
    if packages is not None:
        (tmp_path / "packages.yml").write_text(packages)
    before = files(tmp_path)
    result = init(tmp_path)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / culprit}: ") and problem in lines[0], result.output
    assert "Traceback" not in result.output
    assert files(tmp_path) == before  # neither file, nor a new packages.yml or .gitignore


def test_a_second_run_changes_nothing_and_says_so(project):
    (project / ".gitignore").write_text("target/\n/.featurehouse")  # ignored already, no final newline
    assert init(project).exit_code == 0
    assert (project / ".gitignore").read_text() == "target/\n/.featurehouse"
    before = {name: (data, (project / name).stat().st_mtime_ns) for name, data in files(project).items()}
    again = init(project)
    assert again.exit_code == 0
    assert "nothing changed" in again.output and "already declares vars.featurehouse" in again.output
    assert {name: (data, (project / name).stat().st_mtime_ns) for name, data in files(project).items()} == before


def test_gitignore_is_created_or_appended_to(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: shop\n")
    (tmp_path / ".gitignore").write_text("target/\ndbt_packages/")
    assert init(tmp_path).exit_code == 0
    assert (tmp_path / ".gitignore").read_text().startswith("target/\ndbt_packages/\n# featurehouse")
    assert ".featurehouse/" in (tmp_path / ".gitignore").read_text().splitlines()


def test_local_is_this_machines_package_and_init_makes_it_git_again(project):
    result = init(project, "--local")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((project / "packages.yml").read_text()) == {"packages": [{"local": str(packaging.dbt_package_dir())}]}
    assert packaging.dbt_package_dir() == REPO  # in a checkout, the checkout itself
    assert "nothing changed" in init(project, "--local").output
    back = init(project)
    assert back.exit_code == 0 and "replaced by git at revision" in back.output
    written = (project / "packages.yml").read_text()
    assert yaml.safe_load(written) == {"packages": [GIT]}
    assert "no subdirectory" in written and "on this machine" not in written  # its comment follows the entry


def test_the_local_entry_older_inits_wrote_is_replaced_and_crlf_kept(tmp_path):
    """`featurehouse init` on an editable install once wrote its checkout's path: a path nobody else has."""
    (tmp_path / "dbt_project.yml").write_bytes(b"name: shop\r\nvars: {}\r\n")
    (tmp_path / "packages.yml").write_bytes(b"packages:\r\n  - local: /home/someone/src/fh  # featurehouse\r\n"
                                            b"  - package: x/y\r\n    version: 1\r\n")
    result = init(tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "packages.yml").read_bytes() == (
        b'packages:\r\n  - git: "https://github.com/featurehouse/featurehouse.git"\r\n'
        + f"    revision: v{VERSION}\r\n".encode() + b"  - package: x/y\r\n    version: 1\r\n")
    assert (tmp_path / "dbt_project.yml").read_bytes() == b"name: shop\r\nvars: {featurehouse: {entities: {user: [user_id]}}}\r\n"


def test_an_older_revision_is_moved_to_this_version(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: shop\n")
    (tmp_path / "packages.yml").write_text("packages:\n  - git: 'https://github.com/featurehouse/featurehouse'  # fh\n"
                                           "    revision: 'v0.0.9'  # pinned\n")
    result = init(tmp_path)
    assert result.exit_code == 0 and f"revision v0.0.9 -> v{VERSION}" in result.output
    assert (tmp_path / "packages.yml").read_text() == (
        f"packages:\n  - git: 'https://github.com/featurehouse/featurehouse'  # fh\n    revision: 'v{VERSION}'  # pinned\n")


def test_featurehouse_from_the_hub_is_left_alone(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: shop\n")
    text = "packages:\n  - package: featurehouse/featurehouse\n    version: [\">=0.1.0\", \"<0.2.0\"]\n"
    (tmp_path / "packages.yml").write_text(text)
    result = init(tmp_path)
    assert result.exit_code == 0 and "left as is" in result.output
    assert (tmp_path / "packages.yml").read_text() == text


def test_dependencies_yml_is_edited_when_it_lists_the_packages(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: shop\n")
    (tmp_path / "dependencies.yml").write_text("projects:\n  - name: core\npackages:\n  - package: a/b\n    version: 1\n")
    assert init(tmp_path).exit_code == 0
    assert not (tmp_path / "packages.yml").exists()  # dbt refuses packages in both files
    assert yaml.safe_load((tmp_path / "dependencies.yml").read_text())["packages"][1] == GIT


def test_dbt_reads_what_init_wrote(tmp_path, monkeypatch):
    """`dbt deps` and `dbt parse` on a project init made (--local: no network), featurehouse's macros included."""
    (tmp_path / "dbt_project.yml").write_text("name: shop\nprofile: shop\nconfig-version: 2\nvars: {start_date: '2018-01-01'}\n")
    (tmp_path / "profiles.yml").write_text(
        "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: .featurehouse/shop.duckdb\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.sql").write_text("select 1 as user_id, current_timestamp as updated_at\n")
    assert init(tmp_path, "--local").exit_code == 0
    (tmp_path / ".featurehouse").mkdir()
    monkeypatch.delenv("DBT_PROFILES_DIR", raising=False)
    manifest = DbtProject(tmp_path).manifest()  # dbt deps, then dbt parse; the version check passes on this package
    assert "macro.featurehouse.point_in_time_join" in manifest["macros"]
    assert manifest["metadata"]["project_name"] == "shop"


def test_the_git_entry_init_writes_installs_with_dbt_deps_and_a_new_project_trains(tmp_path, monkeypatch):
    """The documented install, end to end: `init` writes the git entry at this version's tag; `dbt deps`
    clones it (here from a clone of this repository tagged as a release is, instead of GitHub: no network)
    and installs the repository root as the dbt package; then a feature view of a project nobody here
    wrote builds and gives a training set, through the installed macros and the Python API alike."""
    import subprocess

    import pandas as pd

    from featurehouse import FeatureStore

    upstream = tmp_path / "upstream"
    subprocess.run(["git", "clone", "-q", str(REPO), str(upstream)], check=True)
    tags = subprocess.run(["git", "-C", str(upstream), "tag", "-l", f"v{VERSION}"], check=True,
                          capture_output=True, text=True).stdout.split()
    if not tags:
        subprocess.run(["git", "-C", str(upstream), "tag", f"v{VERSION}"], check=True)
    project = tmp_path / "bikes"
    (project / "models").mkdir(parents=True)
    (project / "seeds").mkdir()
    (project / "dbt_project.yml").write_text("name: bikes\nversion: '1.0'\nconfig-version: 2\nprofile: bikes\n"
                                             "models:\n  bikes:\n    +materialized: table\n")
    (project / "profiles.yml").write_text(
        "bikes:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: bikes.duckdb\n")
    (project / "seeds" / "rides.csv").write_text(
        "rider_id,ride_at,km\n1,2026-05-01 08:00:00,3.5\n1,2026-05-01 18:00:00,4.0\n2,2026-05-01 09:30:00,12.25\n")
    (project / "models" / "rider_km.sql").write_text(
        "{{ config(meta={'featurehouse': {'entity': 'rider', 'event_time': 'ride_at', 'ttl': '1d'}}) }}\n"
        "select rider_id, cast(ride_at as timestamp) as ride_at,\n"
        "       sum(km) over (partition by rider_id order by ride_at) as km_total\n"
        "from {{ ref('rides') }}\n")
    (project / "models" / "labels.sql").write_text(
        "select 1 as rider_id, timestamp '2026-05-01 12:00:00' as asof union all\n"
        "select 1, timestamp '2026-05-02 19:00:00' union all select 2, timestamp '2026-05-01 09:00:00'\n")
    (project / "models" / "km_training.sql").write_text(
        "{{ featurehouse.point_in_time_join(spine=ref('labels'), timestamp='asof', features=['rider_km.km_total']) }}\n")
    assert init(project).exit_code == 0
    packages = (project / "packages.yml").read_text()
    assert f'git: "{GIT["git"]}"' in packages and f"revision: v{VERSION}" in packages
    (project / "packages.yml").write_text(packages.replace(GIT["git"], upstream.as_uri()))
    config = (project / "dbt_project.yml").read_text()
    (project / "dbt_project.yml").write_text(config.replace("user: [user_id]", "rider: [rider_id]"))
    monkeypatch.delenv("DBT_PROFILES_DIR", raising=False)

    store = FeatureStore(project)
    store.build()
    installed = project / "dbt_packages" / "featurehouse"
    assert (installed / "macros").is_dir() and not installed.is_symlink()  # cloned, not linked
    by_python = store.training_set("labels", ["rider_km.km_total"], timestamp="asof")
    by_macro = store.warehouse.fetch_arrow("select * from main.km_training").to_pandas()
    expected = {(1, "2026-05-01 12:00:00"): 3.5, (1, "2026-05-02 19:00:00"): None, (2, "2026-05-01 09:00:00"): None}
    for frame in (by_python, by_macro):
        got = {(r.rider_id, str(r.asof)): (None if pd.isna(r.rider_km__km_total) else r.rider_km__km_total)
               for r in frame.itertuples()}
        assert got == expected  # the 18:00 ride is > 1d before the second as-of time: expired by the TTL
