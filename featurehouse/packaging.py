"""Where featurehouse's dbt package and example project are, how a dbt project lists the package, and the check
that the dbt package a project installed is the version of this Python package.

In a checkout (an editable install) the repository root is the dbt package and dbt_project/ the example; a wheel
carries copies of both under featurehouse/_bundled/ (made at build time by featurehouse/_build.py).

`featurehouse init` edits dbt_project.yml and packages.yml with the helpers below: ruamel.yaml composes the file
(positions of every key and item) and the change is inserted as text at those positions, so the user's comments,
quotes, flow-style maps and indentation stay byte for byte; the result is read back the way dbt reads it (PyYAML)
and must equal the intended data, else ruamel's round-trip dump is tried, else the file is refused, unchanged.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featurehouse import __version__
from featurehouse.errors import ProjectError

HERE = Path(__file__).resolve().parent
BUNDLED = HERE / "_bundled"
PACKAGE_NAME = "featurehouse"
DEMO_DIR_NAME = "featurehouse_demo"
EXAMPLE_NAME = "featurehouse_demo"  # `name:` in the example's dbt_project.yml


# -- where the dbt package and the example are ------------------------------------------------------------------

def _dbt_name(project_dir: Path) -> str | None:
    """`name:` of the dbt project in a directory (None when it holds none or an unreadable one)."""
    import yaml

    try:
        config = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return str(config.get("name")) if isinstance(config, dict) else None


@functools.cache
def checkout_root() -> Path | None:
    """The repository root when featurehouse runs from a checkout (an editable install), else None."""
    root = HERE.parent
    if (root / "pyproject.toml").is_file() and (root / "macros").is_dir() and _dbt_name(root) == PACKAGE_NAME:
        return root
    return None


def dbt_package_dir() -> Path:
    """The featurehouse dbt package (dbt_project.yml, macros/, models/) that comes with this Python package."""
    if (BUNDLED / "dbt_package" / "dbt_project.yml").is_file():
        return BUNDLED / "dbt_package"
    root = checkout_root()
    if root is None:
        raise ProjectError(f"the featurehouse dbt package is neither in {BUNDLED} nor in a checkout around {HERE}: "
                           "reinstall featurehouse (`pip install --force-reinstall featurehouse`)")
    return root


def example_project_dir() -> Path:
    """The example dbt project of `featurehouse demo`, as shipped (read it; run a copy when it is bundled)."""
    if (BUNDLED / "example" / "dbt_project.yml").is_file():
        return BUNDLED / "example"
    root = checkout_root()
    if root is None or not (root / "dbt_project" / "dbt_project.yml").is_file():
        raise ProjectError(f"no example project in {BUNDLED} nor in a checkout around {HERE}: reinstall featurehouse "
                           "(`pip install --force-reinstall featurehouse`) or pass --project-dir")
    return root / "dbt_project"


def repository_url() -> str:
    """The featurehouse repository (pyproject's [project.urls] Repository): from the checkout's pyproject.toml,
    which may be newer than an editable install's metadata, else from the installed package's metadata."""
    root = checkout_root()
    if root is not None:
        import tomllib

        urls = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("project", {}).get("urls", {})
        if urls.get("Repository"):
            return str(urls["Repository"])
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        for value in metadata(PACKAGE_NAME).get_all("Project-URL") or []:
            label, _, url = value.partition(",")
            if label.strip().lower() == "repository" and url.strip():
                return url.strip()
    except PackageNotFoundError:
        pass
    raise ProjectError("the installed featurehouse names no repository (Project-URL: Repository): "
                       "use `featurehouse init --local`, or reinstall featurehouse")


def git_url() -> str:
    url = repository_url().rstrip("/")
    return url if url.endswith(".git") else url + ".git"


def revision() -> str:
    """The git tag of this version: what a packages.yml entry pins."""
    return f"v{__version__}"


# -- the version check -------------------------------------------------------------------------------------------

def check_dbt_package(project_dir: Path, config: dict[str, Any]) -> None:
    """The featurehouse dbt package a project installed (`dbt deps`) must be this Python package's version:
    the macros and the registry model are read by this code. A `local:` entry on this very package matches."""
    installed = project_dir / str(config.get("packages-install-path") or "dbt_packages") / PACKAGE_NAME
    meta = installed / "dbt_project.yml"
    if not meta.is_file():
        return
    try:
        if installed.resolve() == dbt_package_dir().resolve():
            return
    except ProjectError:
        pass
    import yaml

    try:
        version = (yaml.safe_load(meta.read_text(encoding="utf-8")) or {}).get("version")
    except (OSError, yaml.YAMLError, AttributeError):
        version = None
    if version is not None and str(version) == __version__:
        return
    shown = "of unknown version" if version is None else f"version {version}"
    pin = f"pip install featurehouse=={version}" if version is not None else "pip install featurehouse==<that version>"
    raise ProjectError(f"the featurehouse dbt package in {installed} is {shown}, but the featurehouse Python package is "
                       f"version {__version__}: pin `revision: {revision()}` for featurehouse in packages.yml "
                       f"(`featurehouse init` does) and run `dbt deps`, or `{pin}`")


# -- the example project for `featurehouse demo` -------------------------------------------------------------------

def demo_project(explicit: Path | None) -> tuple[Path, str]:
    """The project `featurehouse demo` runs, and a line saying where it is. --project-dir as given; in a checkout,
    its dbt_project/ in place; from a wheel, a copy of the bundled example in ./featurehouse_demo (the package's own
    files stay read-only), made on first use and refreshed when featurehouse's version changed."""
    if explicit is not None:
        project = explicit.resolve()
        if not (project / "dbt_project.yml").is_file():
            raise ProjectError(f"no dbt project at {project} (--project-dir): pass the example project's directory")
        return project, f"example project: {project}"
    example = example_project_dir()
    if not example.is_relative_to(BUNDLED):
        return example.resolve(), f"example project: {example} (this checkout's dbt_project/)"
    project = (Path.cwd() / DEMO_DIR_NAME).resolve()
    stamp = project / ".featurehouse-example"
    if project.exists() and _dbt_name(project) != EXAMPLE_NAME:
        raise ProjectError(f"{project} exists and is not featurehouse's example project: run `featurehouse demo` from "
                           "another directory, or pass --project-dir")
    fresh = not project.exists()
    try:
        if fresh or not stamp.is_file() or stamp.read_text(encoding="utf-8").strip() != __version__:
            shutil.copytree(example, project, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            stamp.write_text(__version__ + "\n", encoding="utf-8")
            note = "copied" if fresh else f"refreshed for featurehouse {__version__}"
        else:
            note = "reused"
        packages = (f"packages:\n  # featurehouse's dbt package, as installed with featurehouse on this machine\n"
                    f"  - local: {json.dumps(str(dbt_package_dir()))}\n")
        path = project / "packages.yml"
        if not path.is_file() or path.read_text(encoding="utf-8") != packages:
            path.write_text(packages, encoding="utf-8")
            shutil.rmtree(project / "dbt_packages", ignore_errors=True)  # `dbt deps` again, on the new path
            (project / "package-lock.yml").unlink(missing_ok=True)
    except OSError as e:
        raise ProjectError(f"cannot write the example project to {project} ({e.strerror or e}): run `featurehouse demo` "
                           "from a directory you can write to, or pass --project-dir") from None
    return project, (f"example project: {project} ({note} from the featurehouse package; "
                     f"`featurehouse --project-dir {project.name} ...` works on it from here, delete it when done)")


# -- YAML edits that keep the user's file as it was --------------------------------------------------------------

class CannotMerge(Exception):
    """A file whose structure featurehouse will not change: the message says what to fix."""


@dataclass
class YamlDoc:
    """A YAML file's text, the data dbt reads from it (PyYAML) and ruamel's node tree (positions)."""

    path: Path
    text: str
    data: Any
    root: Any  # a ruamel.yaml node, None for an empty file

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"


def read_text(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:  # CRLF files stay CRLF
        return f.read()


def write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def load(path: Path, text: str) -> YamlDoc:
    import yaml
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ProjectError(f"{path}: not valid YAML{_where(e)}: fix it, then run `featurehouse init` again") from None
    try:
        root = YAML().compose(text)
    except YAMLError as e:
        raise ProjectError(f"{path}: cannot be read for editing{_where(e)}: fix it, then run `featurehouse init` "
                           "again") from None
    return YamlDoc(path, text, data, root)


def _where(e: Exception) -> str:
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where} ({' '.join(str(problem).split())})" if problem else where


def edit(doc: YamlDoc, change: Callable[[Any], None], text_edit: Callable[[YamlDoc], str], what: str) -> str:
    """The file's text with `change` made: `text_edit`'s insertion when it reads back as `change` says, else
    ruamel's round-trip dump when that does, else CannotMerge (the file is left to the user, unchanged)."""
    import yaml

    expected = copy.deepcopy(doc.data)
    change(expected)

    def reads_back(text: str) -> bool:
        try:
            return yaml.safe_load(text) == expected
        except yaml.YAMLError:
            return False

    try:
        text = text_edit(doc)
        if reads_back(text):
            return text
    except CannotMerge:
        raise
    except Exception:  # noqa: BLE001 - an unusual layout: ruamel's dump below, or the refusal, decides
        pass
    text = _roundtrip(doc.text, change)
    if text is not None and reads_back(text):
        return text
    raise CannotMerge(f"cannot add {what} to it without changing what dbt reads: add it by hand")


def _roundtrip(text: str, change: Callable[[Any], None]) -> str | None:
    import io

    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    try:
        data = rt.load(text)
        change(data)
        out = io.StringIO()
        rt.dump(data, out)
    except Exception:  # noqa: BLE001 - the caller refuses the file
        return None
    return out.getvalue().replace("\n", "\r\n") if "\r\n" in text else out.getvalue()


def is_mapping(node: Any) -> bool:
    from ruamel.yaml.nodes import MappingNode

    return isinstance(node, MappingNode)


def is_sequence(node: Any) -> bool:
    from ruamel.yaml.nodes import SequenceNode

    return isinstance(node, SequenceNode)


def is_empty_null(node: Any) -> bool:
    """`key:` with nothing after it."""
    return (not is_mapping(node) and not is_sequence(node) and node.tag.endswith(":null")
            and node.start_mark.index == node.end_mark.index)


def value_node(mapping: Any, key: str) -> tuple[Any, Any] | None:
    """(key node, value node) of a key of a mapping node; CannotMerge for a value made elsewhere (an alias)."""
    for k, v in mapping.value:
        if getattr(k, "value", None) == key:
            if v.start_mark.index < k.end_mark.index:
                raise CannotMerge(f"`{key}` is an alias (*name) of a value defined elsewhere: write it out")
            return k, v
    return None


def _last_leaf(node: Any) -> Any:
    while (is_mapping(node) or is_sequence(node)) and not node.flow_style and node.value:
        node = node.value[-1][1] if is_mapping(node) else node.value[-1]
    return node


def _after_line(text: str, pos: int) -> int:
    """The start of the line after the one holding `pos` (where new lines go)."""
    if pos > 0 and text[pos - 1] == "\n":
        return pos
    end = text.find("\n", pos)
    return len(text) if end < 0 else end + 1


def _insert_lines(doc: YamlDoc, pos: int, lines: list[str]) -> str:
    nl = doc.newline
    block = "".join(line + nl for line in lines)
    if pos == len(doc.text) and doc.text and not doc.text.endswith("\n"):
        block = nl + block
    return doc.text[:pos] + block + doc.text[pos:]


def insert_key(doc: YamlDoc, mapping: Any, key: str, flow: str, block: list[str], at_end_of_file: bool = False) -> str:
    """`key: value` added as the last entry of a mapping node: `, key: flow` in a flow map, else the `block` lines
    (`key: ...` and what follows, indented from 0) at the mapping's indentation after its last line."""
    if mapping.flow_style:
        if mapping.value:
            pos = mapping.value[-1][1].end_mark.index
            return doc.text[:pos] + f", {key}: {flow}" + doc.text[pos:]
        pos = mapping.start_mark.index + 1
        return doc.text[:pos] + f"{key}: {flow}" + doc.text[pos:]
    indent = " " * mapping.start_mark.column
    pos = len(doc.text) if at_end_of_file else _after_line(doc.text, _last_leaf(mapping).end_mark.index)
    return _insert_lines(doc, pos, [indent + line for line in block])


def fill_null(doc: YamlDoc, key_node: Any, null: Any, flow: str, block: list[str]) -> str:
    """`key:` (nothing) becomes `key:` and the block lines under it; `key: null` or `key: ~` becomes `key: flow`."""
    if is_empty_null(null):
        indent = " " * (key_node.start_mark.column + 2)
        return _insert_lines(doc, _after_line(doc.text, key_node.end_mark.index), [indent + line for line in block])
    return doc.text[:null.start_mark.index] + flow + doc.text[null.end_mark.index:]


def _item_columns(seq: Any) -> tuple[int, int]:
    """The column of a block sequence's dashes and of its items' content."""
    dash = seq.start_mark.column
    first = seq.value[0]
    same_line = first.start_mark.line == seq.start_mark.line
    return dash, first.start_mark.column if same_line and first.start_mark.column >= dash + 2 else dash + 2


def _item_lines(dash: int, content: int, lines: list[str]) -> list[str]:
    return [" " * dash + "-" + " " * (content - dash - 1) + lines[0]] + [" " * content + line for line in lines[1:]]


def append_item(doc: YamlDoc, seq: Any, flow: str, block: list[str], comment: str = "") -> str:
    """An item added at the end of a sequence node: `, flow` in a flow list, else `- ` and the block lines after
    the sequence's last line, at its indentation (a comment line above it)."""
    if seq.flow_style:
        if seq.value:
            pos = seq.value[-1].end_mark.index
            return doc.text[:pos] + f", {flow}" + doc.text[pos:]
        pos = seq.start_mark.index + 1
        return doc.text[:pos] + flow + doc.text[pos:]
    dash, content = _item_columns(seq)
    lines = ([" " * dash + "# " + comment] if comment else []) + _item_lines(dash, content, block)
    return _insert_lines(doc, _after_line(doc.text, _last_leaf(seq).end_mark.index), lines)


def first_items(doc: YamlDoc, key_node: Any, null: Any, block: list[str], comment: str = "") -> str:
    """`key:` (nothing) given its first item."""
    dash = key_node.start_mark.column + 2
    lines = ([" " * dash + "# " + comment] if comment else []) + _item_lines(dash, dash + 2, block)
    if is_empty_null(null):
        return _insert_lines(doc, _after_line(doc.text, key_node.end_mark.index), lines)
    raise CannotMerge("not a list")


def replace_item(doc: YamlDoc, seq: Any, index: int, flow: str, block: list[str],
                 comments: tuple[str, str] | None = None) -> str:
    """Item `index` of a sequence node replaced (with what followed it on its last line, e.g. a comment); with
    `comments` (old, new), the comment line right above the item, when it is `# old`, becomes `# new`."""
    item = seq.value[index]
    if seq.flow_style:
        return doc.text[:item.start_mark.index] + flow + doc.text[item.end_mark.index:]
    _, content = _item_columns(seq)
    end = _after_line(doc.text, _last_leaf(item).end_mark.index)
    nl = doc.newline
    new = block[0] + nl + "".join(" " * content + line + nl for line in block[1:])
    if end == len(doc.text) and not doc.text.endswith("\n"):
        new = new[:-len(nl)]
    text = doc.text[:item.start_mark.index] + new + doc.text[end:]
    line_start = doc.text.rfind("\n", 0, item.start_mark.index) + 1
    above_start = doc.text.rfind("\n", 0, max(line_start - 1, 0)) + 1
    above = doc.text[above_start:line_start]
    if comments and line_start > 0 and above.strip() == "# " + comments[0]:
        text = text[:above_start] + above.replace(comments[0], comments[1]) + text[line_start:]
    return text


def replace_scalar(doc: YamlDoc, node: Any, value: str) -> str:
    """A scalar's text replaced, in the same quotes."""
    raw = doc.text[node.start_mark.index:node.end_mark.index]
    quote = raw[0] if raw[:1] in ("'", '"') else ""
    return doc.text[:node.start_mark.index] + quote + value + quote + doc.text[node.end_mark.index:]


# -- the packages.yml entry ----------------------------------------------------------------------------------------

GIT_COMMENT = "featurehouse's dbt package: the repository root (no subdirectory), at the installed featurehouse's tag"
LOCAL_COMMENT = "featurehouse's dbt package on this machine (development: `featurehouse init` writes the git entry)"


def wanted_entry(local: bool) -> dict[str, str]:
    """The featurehouse entry of packages.yml: git, pinned to this version's tag (a teammate and CI get the same
    package); `local` for development, on this machine's copy of the package."""
    if local:
        return {"local": str(dbt_package_dir())}
    return {"git": git_url(), "revision": revision()}


def entry_text(entry: dict[str, str]) -> tuple[str, list[str], str]:
    """(flow form, block lines, comment line) of a packages.yml entry."""
    if "local" in entry:
        value = json.dumps(entry["local"])
        return f"{{local: {value}}}", [f"local: {value}"], LOCAL_COMMENT
    url, rev = json.dumps(entry["git"]), entry["revision"]
    return f"{{git: {url}, revision: {rev}}}", [f"git: {url}", f"revision: {rev}"], GIT_COMMENT


def _normal_url(url: str) -> str:
    url = url.strip().lower().removesuffix("/").removesuffix(".git")
    for prefix in ("https://", "http://", "ssh://", "git://", "git@"):
        url = url.removeprefix(prefix)
    return url.replace(":", "/", 1) if url.startswith("github.com:") else url


def featurehouse_entry(entry: Any, project_dir: Path, line: str) -> str | None:
    """What kind of featurehouse entry a packages.yml item is: 'git' (this repository), 'local', 'other' (the hub or
    another git repository: left as is), or None when it is another package."""
    if not isinstance(entry, dict):
        return None
    if "git" in entry:
        url = str(entry["git"])
        if "{{" not in url and _normal_url(url) == _normal_url(repository_url()):
            return "git"
        return "other" if _normal_url(url).rsplit("/", 1)[-1] == PACKAGE_NAME else None
    if "package" in entry:
        return "other" if str(entry["package"]).rstrip("/").rsplit("/", 1)[-1] == PACKAGE_NAME else None
    if "local" in entry:
        path = Path(str(entry["local"])).expanduser()
        path = path if path.is_absolute() else project_dir / path
        if _dbt_name(path) == PACKAGE_NAME:
            return "local"
        # `featurehouse init` once wrote `- local: /its/checkout  # featurehouse`: a path on another machine
        return "local" if not path.exists() and "# featurehouse" in line else None
    return None


def _same_dir(project_dir: Path, path: Any, other: str) -> bool:
    here = Path(str(path)).expanduser()
    return (here if here.is_absolute() else project_dir / here).resolve() == Path(other).resolve()


def describe(entry: dict[str, Any]) -> str:
    if "local" in entry:
        return f"local: {entry['local']}"
    if "git" in entry:
        return f"git: {entry['git']}, revision {entry.get('revision', '(none: unpinned)')}"
    return ", ".join(f"{k}: {v}" for k, v in entry.items())


def merge_package(doc: YamlDoc, project_dir: Path, local: bool, keep: bool = False) -> tuple[str, str]:
    """packages.yml (or dependencies.yml) with featurehouse's entry as `local` asks: (new text, what was done).
    A featurehouse entry already there is kept when it is the wanted one, given the installed version's revision
    when it is this repository's git entry, replaced when it is the other kind (local vs git); one from the hub or
    another repository is left as is unless --local. `keep`: any featurehouse entry already there is left as is
    (a command that only needs the package listed, such as import-feast, does not move it)."""
    name = doc.path.name
    want = wanted_entry(local)
    flow, block, comment = entry_text(want)
    root, data = doc.root, doc.data
    if root is None:  # no file, an empty one or only comments
        doc.data = {}  # what `create` starts from: the file holds no data
        lines = ["packages:", "  # " + comment] + _item_lines(2, 4, block)
        text = edit(doc, lambda d: d.update(packages=[want]),
                    lambda doc: _insert_lines(doc, len(doc.text), lines), "`packages:`")
        return text, f"{name}: added featurehouse ({describe(want)})"
    if not is_mapping(root) or not isinstance(data, dict):
        raise CannotMerge("it is not a mapping with a `packages:` list")
    found = value_node(root, "packages")
    if found is None:
        def add_key(d):
            d["packages"] = [want]
        text = edit(doc, add_key, lambda doc: insert_key(doc, root, "packages", f"[{flow}]",
                                                         ["packages:", "  # " + comment] + _item_lines(2, 4, block),
                                                         at_end_of_file=True), "`packages:`")
        return text, f"{name}: added featurehouse ({describe(want)})"
    key_node, seq = found
    items = data.get("packages")
    if items is None:
        def first(d):
            d["packages"] = [want]
        text = edit(doc, first, lambda doc: first_items(doc, key_node, seq, block, comment), "the featurehouse entry")
        return text, f"{name}: added featurehouse ({describe(want)})"
    if not is_sequence(seq) or not isinstance(items, list):
        raise CannotMerge("`packages:` is not a list: make it a list of `- package:`, `- git:` or `- local:` entries")
    lines = doc.text.splitlines()
    kinds = [featurehouse_entry(item, project_dir, lines[node.start_mark.line] if node.start_mark.line < len(lines) else "")
             for item, node in zip(items, seq.value)]
    ours = [i for i, kind in enumerate(kinds) if kind]
    if len(ours) > 1:
        raise CannotMerge("it lists featurehouse more than once (items "
                          f"{', '.join(str(i + 1) for i in ours)} of `packages:`): keep one")
    if not ours:
        def append(d):
            d["packages"].append(want)
        text = edit(doc, append, lambda doc: append_item(doc, seq, flow, block, comment), "the featurehouse entry")
        return text, f"{name}: added featurehouse ({describe(want)})"
    i, kind, have = ours[0], kinds[ours[0]], items[ours[0]]
    if keep:
        return doc.text, f"{name} already lists featurehouse ({describe(have)})"
    if kind == "other" and not local:
        return doc.text, f"{name} lists featurehouse ({describe(have)}): left as is (it must be version {__version__})"
    if local:
        same = kind == "local" and _same_dir(project_dir, have.get("local"), want["local"])
    else:
        same = kind == "git" and str(have.get("revision")) == revision()
    if same:
        return doc.text, f"{name} already lists featurehouse ({describe(have)})"
    if kind == "git" and not local:
        item = seq.value[i]
        pinned = value_node(item, "revision") if is_mapping(item) else None

        def set_revision(d):
            d["packages"][i]["revision"] = revision()

        def pin(doc: YamlDoc) -> str:
            if pinned is not None:
                return replace_scalar(doc, pinned[1], revision())
            return insert_key(doc, item, "revision", revision(), [f"revision: {revision()}"])
        text = edit(doc, set_revision, pin, "the revision")
        return text, (f"{name}: featurehouse revision {have.get('revision', '(none)')} -> {revision()} "
                      f"(the installed featurehouse)")

    def replace(d):
        d["packages"][i] = dict(want)
    old_comment = GIT_COMMENT if local else LOCAL_COMMENT
    text = edit(doc, replace, lambda doc: replace_item(doc, seq, i, flow, block, (old_comment, comment)),
                "the featurehouse entry")
    why = " (a path on one machine)" if kind == "local" else ""
    now = f"`local: {want['local']}`" if local else f"git at revision {revision()}"
    return text, f"{name}: featurehouse's `{describe(have)}`{why} replaced by {now}"
