"""Build step (setuptools `build_py`, named in pyproject.toml's [tool.setuptools] cmdclass): the wheel carries
the featurehouse dbt package (the repository root's dbt_project.yml, macros/ and models/) and the example
project (dbt_project/) as package data under featurehouse/_bundled/, where featurehouse.packaging finds them.

The repository keeps its layout (its root is the dbt package, installable with packages.yml the dbt way); only
the wheel gets copies. An editable install reads the checkout itself, so nothing is copied for it.
Used at build time only: nothing imports this module at run time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools.command.build_py import build_py

BUNDLE = ("featurehouse", "_bundled")
# what of the repository root is the dbt package (not tests/, docs/, the Python package...)
DBT_PACKAGE = ("dbt_project.yml", "macros", "models")
# what of dbt_project/ is the example: not what dbt, featurehouse or the demo write into it
EXAMPLE_SKIP = ("target", "dbt_packages", "logs", ".featurehouse", "data", "package-lock.yml", ".user.yml",
                "*.duckdb", "*.duckdb.wal", "*.parquet", "__pycache__", "*.pyc", ".DS_Store")


def bundle_files(root: Path) -> list[tuple[Path, Path]]:
    """(source, path under featurehouse/_bundled/) for every file the wheel carries as the dbt package and the
    example project; an error when the sources are missing (an sdist made without MANIFEST.in's grafts)."""
    skip = shutil.ignore_patterns(*EXAMPLE_SKIP)
    files: list[tuple[Path, Path]] = []

    def walk(src: Path, dst: Path) -> None:
        if src.is_file():
            files.append((src, dst))
            return
        names = sorted(p.name for p in src.iterdir())
        ignored = skip(str(src), names)
        for name in names:
            if name not in ignored:
                walk(src / name, dst / name)

    for name in DBT_PACKAGE:
        if not (root / name).exists():
            raise FileNotFoundError(f"featurehouse build: {root / name} is missing: the wheel must carry the dbt package")
        walk(root / name, Path("dbt_package") / name)
    if not (root / "dbt_project" / "dbt_project.yml").is_file():
        raise FileNotFoundError(f"featurehouse build: {root / 'dbt_project'} is missing: the wheel must carry the example")
    walk(root / "dbt_project", Path("example"))
    return files


class BundleDbtFiles(build_py):
    """`build_py`, then the dbt package and the example project copied into featurehouse/_bundled/."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds them in the checkout (featurehouse.packaging)
        target = Path(self.build_lib, *BUNDLE)
        for src, rel in bundle_files(Path(__file__).resolve().parents[1]):
            dst = target / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(src), str(dst), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            target = Path(self.build_lib, *BUNDLE)
            outputs += [str(target / rel) for _, rel in bundle_files(Path(__file__).resolve().parents[1])]
        return outputs
