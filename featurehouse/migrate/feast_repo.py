"""A Feast repository read without running it: its Python files parsed, its definitions evaluated.

Feast's own loader imports every module of the repository, which needs Feast (and whatever the
repository imports) installed, and runs the user's code. A migration should work on a laptop that has
only featurehouse, so this module parses the files with `ast` and evaluates the subset Feast
repositories are written in: literals, names bound earlier (in this module or one it imports from the
repository), `timedelta(...)`, `Path(__file__).parent / "x"`, f-strings, and calls of Feast's
classes. A definition it cannot evaluate is kept as `Unreadable`, with its file and line, so the
import report lists it instead of dropping it.
"""

from __future__ import annotations

import ast
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from featurehouse.errors import FeaturehouseError


class FeastRepoError(FeaturehouseError):
    """The directory is not a Feast repository, or one of its files cannot be parsed."""


@dataclass(frozen=True)
class Where:
    file: str  # relative to the repository
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Call:
    """A call of a Feast class (or a function we model), with its evaluated arguments."""

    kind: str  # the class name: Entity, FeatureView, FileSource, Field, ...
    args: list[Any]
    kwargs: dict[str, Any]
    where: Where
    name_hint: str | None = None  # the Python name it was bound to, for objects Feast names after it

    def get(self, key: str, default: Any = None, position: int | None = None) -> Any:
        if key in self.kwargs:
            return self.kwargs[key]
        if position is not None and position < len(self.args):
            return self.args[position]
        return default


@dataclass(frozen=True)
class Unreadable:
    """A value this reader cannot evaluate statically (a function call, a comprehension, ...)."""

    text: str
    where: Where

    def __str__(self) -> str:
        return f"`{self.text}` ({self.where})"


@dataclass(frozen=True)
class Symbol:
    """A name imported from Feast or elsewhere: a type (`Float32`), an enum member (`ValueType.INT64`)."""

    name: str
    args: tuple[Any, ...] = ()  # Array(Float32), Struct({...})


@dataclass(frozen=True)
class Projection:
    """`view[["a", "b"]]` inside a FeatureService: some of a view's features."""

    view: Any
    features: tuple[str, ...]


@dataclass(frozen=True)
class Renamed:
    """`view.with_name("x")` or `view.with_join_key_map({...})` in a FeatureService: the view, aliased."""

    view: Any  # a Call or a Projection
    how: str
    argument: Any


@dataclass
class OnDemandView:
    """A function decorated with `@on_demand_feature_view(...)`: Python run at request time."""

    name: str
    decorator: Call
    where: Where


@dataclass
class FeastRepo:
    """Everything a Feast repository declares, as found at module level (Feast registers the same)."""

    root: Path
    project: str
    config: dict[str, Any]  # feature_store.yaml
    objects: list[Call] = field(default_factory=list)
    on_demand: list[OnDemandView] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)  # module-level bindings we could not evaluate

    def of_kind(self, *kinds: str) -> list[Call]:
        return [o for o in self.objects if o.kind in kinds]


# Feast classes whose instances are definitions (registered when bound at module level).
DEFINITIONS = {"Entity", "FeatureView", "BatchFeatureView", "StreamFeatureView", "FeatureService", "LabelView",
               "OnDemandFeatureView", "Project", "Permission", "SavedDataset", "ValidationReference",
               "KafkaSource", "KinesisSource", "PushSource", "RequestSource"}
_DECORATORS = {"on_demand_feature_view", "stream_feature_view", "batch_feature_view"}


def read_repo(root: Path) -> FeastRepo:
    """Parse the repository at `root` (the directory holding feature_store.yaml)."""
    root = root.resolve()
    config_path = root / "feature_store.yaml"
    if not config_path.is_file():
        nested = sorted(p.parent for p in root.glob("*/feature_store.yaml"))
        hint = f" (found one in {nested[0]}: pass that directory)" if nested else ""
        raise FeastRepoError(f"{root} is not a Feast repository: no feature_store.yaml{hint}")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise FeastRepoError(f"{config_path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(config, dict) or not config.get("project"):
        raise FeastRepoError(f"{config_path}: `project:` is missing")
    reader = _Reader(root, _ignored(root))
    repo = FeastRepo(root=root, project=str(config["project"]), config=config)
    seen: set[int] = set()
    for path in sorted(root.rglob("*.py")):
        if reader.ignored(path):
            continue
        module = reader.module(path)
        for name, value in module.items():
            if isinstance(value, Call) and value.kind in DEFINITIONS and id(value) not in seen:
                seen.add(id(value))
                if value.name_hint is None:
                    value.name_hint = name
                repo.objects.append(value)
            elif isinstance(value, OnDemandView) and id(value) not in seen:
                seen.add(id(value))
                repo.on_demand.append(value)
        repo.unreadable.extend(reader.unreadable.pop(path, []))
    return repo


def _ignored(root: Path) -> list[str]:
    """.feastignore patterns (Feast skips those paths); virtualenvs and caches are never definitions."""
    patterns = [".venv", "venv", "__pycache__", ".git", "node_modules", "site-packages"]
    ignore_file = root / ".feastignore"
    if ignore_file.is_file():
        patterns += [line.strip() for line in ignore_file.read_text(encoding="utf-8").splitlines()
                     if line.strip() and not line.startswith("#")]
    return patterns


class _Reader:
    """Evaluates modules lazily, so `from .entities import driver` reads entities.py first."""

    def __init__(self, root: Path, ignore: list[str]):
        self.root, self.ignore = root, ignore
        self.modules: dict[Path, dict[str, Any]] = {}
        self.loading: set[Path] = set()
        self.unreadable: dict[Path, list[Unreadable]] = {}

    def ignored(self, path: Path) -> bool:
        rel = path.relative_to(self.root)
        return any(rel.match(p) or any(part == p.strip("/") for part in rel.parts) for p in self.ignore)

    def module(self, path: Path) -> dict[str, Any]:
        if path in self.modules:
            return self.modules[path]
        if path in self.loading:  # an import cycle: what is bound so far
            return {}
        self.loading.add(path)
        rel = str(path.relative_to(self.root))
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        except SyntaxError as e:
            raise FeastRepoError(f"{rel}:{e.lineno}: not valid Python ({e.msg})") from None
        env = _Module(self, path, rel)
        env.run(tree)
        self.loading.discard(path)
        self.modules[path] = env.names
        return env.names

    def resolve_import(self, importer: Path, module: str | None, level: int) -> Path | None:
        """The repository file an import names, if it is one of ours."""
        base = importer.parent
        for _ in range(max(level - 1, 0)):
            base = base.parent
        if level == 0:
            base = self.root
        parts = (module or "").split(".") if module else []
        for candidate in (base.joinpath(*parts).with_suffix(".py") if parts else None,
                          base.joinpath(*parts, "__init__.py")):
            if candidate is not None and candidate.is_file() and self.root in candidate.parents:
                return candidate
        return None


class _Module:
    def __init__(self, reader: _Reader, path: Path, rel: str):
        self.reader, self.path, self.rel = reader, path, rel
        self.names: dict[str, Any] = {"__file__": path, "True": True, "False": False, "None": None}

    def where(self, node: ast.AST) -> Where:
        return Where(self.rel, getattr(node, "lineno", 0))

    def unreadable(self, node: ast.AST) -> Unreadable:
        return Unreadable(ast.unparse(node)[:120], self.where(node))

    def run(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            self.statement(stmt)

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.ImportFrom):
            target = self.reader.resolve_import(self.path, stmt.module, stmt.level)
            source = self.reader.module(target) if target is not None else None
            for alias in stmt.names:
                bound = alias.asname or alias.name
                if alias.name == "*" and source is not None:  # `from entities import *`
                    self.names.update({k: v for k, v in source.items() if not k.startswith("_")})
                elif source is not None and alias.name in source:
                    self.names[bound] = source[alias.name]
                else:
                    self.names[bound] = Symbol(alias.name)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                self.names[alias.asname or alias.name.split(".")[0]] = Symbol(alias.asname or alias.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            value = self.expr(stmt.value) if stmt.value is not None else None
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    self.names[target.id] = value
                    if isinstance(value, Call) and value.name_hint is None:
                        value.name_hint = target.id
                    if isinstance(value, Unreadable) and _mentions_feast(stmt.value):
                        self.reader.unreadable.setdefault(self.path, []).append(value)
        elif isinstance(stmt, ast.FunctionDef):
            for deco in stmt.decorator_list:
                call = deco if isinstance(deco, ast.Call) else None
                name = _callee_name(call.func if call else deco)
                if name in _DECORATORS:
                    decorator = self.expr(call) if call else Call(name, [], {}, self.where(deco))
                    if not isinstance(decorator, Call):
                        decorator = Call(name, [], {}, self.where(deco))
                    self.names[stmt.name] = OnDemandView(stmt.name, decorator, self.where(stmt))
                    break
        elif isinstance(stmt, ast.If) and _is_main_guard(stmt):
            return  # `if __name__ == "__main__":` runs nothing at import
        elif isinstance(stmt, (ast.If, ast.With, ast.Try, ast.For, ast.While)):
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.stmt):
                    self.statement(child)

    def expr(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return [self.expr(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {self.expr(k) if k is not None else None: self.expr(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            return Symbol(node.id)
        if isinstance(node, ast.Attribute):
            base = self.expr(node.value)
            if isinstance(base, Path) and node.attr == "parent":
                return base.parent
            if isinstance(base, Symbol):  # ValueType.INT64, feast.types.Float32: known by their last name
                return Symbol(node.attr)
            return self.unreadable(node)
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                v = self.expr(value.value) if isinstance(value, ast.FormattedValue) else self.expr(value)
                if isinstance(v, (Unreadable, Symbol)):
                    return self.unreadable(node)
                parts.append(str(v))
            return "".join(parts)
        if isinstance(node, ast.BinOp):
            left, right = self.expr(node.left), self.expr(node.right)
            if isinstance(node.op, ast.Div) and isinstance(left, Path) and isinstance(right, (str, Path)):
                return left / right
            if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
                return left + right
            if isinstance(node.op, (ast.Add, ast.Mult, ast.Sub)) and all(
                    isinstance(v, (int, float, dt.timedelta)) for v in (left, right)):
                try:
                    return {ast.Add: lambda a, b: a + b, ast.Mult: lambda a, b: a * b,
                            ast.Sub: lambda a, b: a - b}[type(node.op)](left, right)
                except TypeError:
                    return self.unreadable(node)
            return self.unreadable(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = self.expr(node.operand)
            return -value if isinstance(value, (int, float)) else self.unreadable(node)
        if isinstance(node, ast.Subscript):
            base = self.expr(node.value)
            index = self.expr(node.slice)
            if isinstance(base, Call) and isinstance(index, list) and all(isinstance(i, str) for i in index):
                return Projection(base, tuple(index))
            if isinstance(base, Renamed) and isinstance(index, list) and all(isinstance(i, str) for i in index):
                return Renamed(Projection(base.view, tuple(index)), base.how, base.argument)
            if isinstance(base, Symbol):  # typing-style Array[Float32]
                return Symbol(base.name, (index,))
            return self.unreadable(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        return self.unreadable(node)

    def call(self, node: ast.Call) -> Any:
        callee = self.expr(node.func) if not isinstance(node.func, ast.Attribute) else None
        name = _callee_name(node.func)
        args = [self.expr(a) for a in node.args]
        kwargs = {kw.arg: self.expr(kw.value) for kw in node.keywords if kw.arg is not None}
        if name == "timedelta":
            try:
                return dt.timedelta(*[a for a in args if isinstance(a, (int, float))], **{
                    k: v for k, v in kwargs.items() if isinstance(v, (int, float))})
            except (TypeError, OverflowError):
                return self.unreadable(node)
        if name in ("str", "int", "float") and isinstance(node.func, ast.Name) and len(args) == 1 and not kwargs \
                and isinstance(args[0], (str, int, float, Path)):
            try:
                return {"str": str, "int": int, "float": float}[name](args[0])
            except ValueError:
                return self.unreadable(node)
        if name == "Duration" and not args and all(isinstance(v, int) for v in kwargs.values()):
            # google.protobuf's Duration, how Feast before 0.10 spelled a TTL
            return dt.timedelta(seconds=kwargs.get("seconds", 0), microseconds=kwargs.get("nanos", 0) // 1000)
        if name == "Path" and len(args) == 1 and isinstance(args[0], (str, Path)):
            return Path(args[0])
        if name in ("with_name", "with_join_key_map") and isinstance(node.func, ast.Attribute):
            base = self.expr(node.func.value)  # the same view under another prefix or join keys
            if isinstance(base, (Call, Projection)):
                return Renamed(base, name, args[0] if args else kwargs)
            return self.unreadable(node)
        if name in ("resolve", "absolute") and isinstance(node.func, ast.Attribute):
            base = self.expr(node.func.value)
            return base if isinstance(base, Path) else self.unreadable(node)
        if name == "join" and isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "os.path":
            if all(isinstance(a, (str, Path)) for a in args):
                return Path(*args)
            return self.unreadable(node)
        if name == "dirname" and len(args) == 1 and isinstance(args[0], (str, Path)):
            return Path(args[0]).parent
        if name in ("Array", "Struct", "Map") and not kwargs:
            return Symbol(name, tuple(args))
        if name and name[:1].isupper() and (isinstance(callee, Symbol) or callee is None):
            return Call(name, args, kwargs, self.where(node))
        return self.unreadable(node)  # a function of the repository's own: only running it would tell


def _callee_name(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_main_guard(stmt: ast.If) -> bool:
    return "__name__" in ast.unparse(stmt.test) and "__main__" in ast.unparse(stmt.test)


def _mentions_feast(node: ast.expr | None) -> bool:
    """A binding worth reporting when unreadable: it calls something that looks like a Feast class."""
    if node is None:
        return False
    return any(isinstance(n, ast.Call) and (_callee_name(n.func) or "") in DEFINITIONS | {"FileSource", "PushSource"}
               for n in ast.walk(node))
