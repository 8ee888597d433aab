"""The identity of code: digests of the source files a script or an attention kind runs, so that
a job re-runs, and a training run starts anew, whenever the code behind it changes.

Conservative: a file counts whole, whatever of it is used, and so does every file an import
statement in it can reach (inside functions too), but for the standard library and installed
packages. Comments and layout are left out (a digest of the tokens). Nothing is imported: files
are read, and imports found as Python would. A needless re-run is cheap, a stale result is not.

A kind's code is the module that registers it and all it reaches, other kind modules included
(a plugin wrapping euclid changes with euclid's module); the code shared by all kinds is what
the entry files reach without entering any kind module, so editing one kind's module never
changes the identity of a kind registered elsewhere.
"""

import ast
import functools
import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import site
import sys
import sysconfig
import tokenize
from pathlib import Path
from typing import NamedTuple

from attnscore import kinds

PACKAGE = Path(__file__).resolve().parent
# What a training run's weights come from: training's entry modules (its DDP launcher included).
# The modules they reach count whole, those that only write files or logs too: a module that
# changes no weight today may tomorrow, and a needless retraining is the safe mistake.
TRAINING = (PACKAGE / "train.py", PACKAGE / "launch.py")
# Where the standard library and installed packages live: files there are not the project's code.
INSTALLED = tuple(
    {
        Path(folder).resolve()
        for folder in [
            *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
            *site.getsitepackages(),
            site.getusersitepackages(),
        ]
    }
)
LAYOUT = {tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE, tokenize.ENDMARKER}  # their text is whitespace
IGNORED = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING}  # comments, blank lines, breaks within brackets


class Source(NamedTuple):
    digest: str
    # (level, module, names) of each import statement, inside functions too: `import a.b` is
    # (0, "a.b", ()), `from ..a import b, c as d` is (2, "a", ("b", "c"))
    imports: list


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _read(path: Path, data: bytes) -> Source:
    """A file's digest and imports: of its tokens for Python source (layout and comments left out),
    of its bytes for anything else (a compiled module, or source that does not parse: it imports
    nothing)."""
    if path.suffix != ".py":
        return Source(_digest(data), [])
    try:
        tokens = [
            (token.type, "" if token.type in LAYOUT else token.string)
            for token in tokenize.tokenize(io.BytesIO(data).readline)
            if token.type not in IGNORED
        ]
        nodes = list(ast.walk(ast.parse(data)))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return Source(_digest(data), [])
    imports = [(0, alias.name, ()) for node in nodes if isinstance(node, ast.Import) for alias in node.names]
    imports += [
        (node.level, node.module or "", tuple(alias.name for alias in node.names))
        for node in nodes
        if isinstance(node, ast.ImportFrom)
    ]
    text = "".join(f"{kind}:{len(string)}:{string}" for kind, string in tokens)
    return Source(_digest(text.encode()), imports)


class _Store:
    """The Sources of files read before, kept across processes as {path: [digest of the bytes,
    digest, imports]}: reading is most of what a dry run spends here. Unreadable or unwritable,
    it is done without; processes saving at once lose one another's additions, never correctness."""

    def __init__(self, path: Path):
        self.path, self.entries, self.changed = path, None, False

    def get(self, path: Path, content: str) -> Source | None:
        if self.entries is None:
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.entries = {}
        stored = self.entries.get(str(path))
        return Source(*stored[1:]) if stored and stored[0] == content else None

    def put(self, path: Path, content: str, source: Source) -> None:
        self.entries[str(path)] = [content, *source]
        self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        kept = {path: entry for path, entry in self.entries.items() if os.path.exists(path)}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(kept))
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
        self.changed = False


STORE = _Store(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "attnscore", "codeid.json"))
_sources: dict[Path, tuple[tuple[int, int], Source]] = {}


def source_of(path: Path) -> Source:
    """A file's Source, read once a process while its modification time and size stay the same,
    and tokenized once while its bytes stay the same (STORE)."""
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    if path not in _sources or _sources[path][0] != key:
        data = path.read_bytes()
        content = hashlib.sha256(data).hexdigest()
        found = STORE.get(path, content)
        if found is None:
            found = _read(path, data)
            STORE.put(path, content, found)
        _sources[path] = (key, found)
    return _sources[path][1]


@functools.cache
def _local(origin: str) -> Path | None:
    """The file of a module that is the project's code (attnscore is, wherever it is installed), else None."""
    path = Path(origin).resolve()
    if path.is_relative_to(PACKAGE) or not any(path.is_relative_to(folder) for folder in INSTALLED):
        return path
    return None


@functools.cache
def _spec(name: str, locations: tuple[str, ...] | None, search_path: tuple[str, ...]):
    """The spec of module `name` in the folders `locations`, or of a top-level module (None) in
    `search_path` (sys.path), as a fresh process would find it; else by importlib.util.find_spec,
    which imports nothing for a top-level name and also asks the finders of editable installs."""
    try:
        spec = importlib.machinery.PathFinder.find_spec(name, list(locations or search_path))
        return spec or (importlib.util.find_spec(name) if locations is None else None)
    except (ImportError, ValueError):
        return None


def _resolve(module: str, names: tuple[str, ...], locations: tuple[str, ...] | None) -> list[Path]:
    """The local files `from <module> import <names>` runs, found in `locations` (None: as a
    top-level module): each package on the way, the module, and each name that is a submodule."""
    files = []
    for part in module.split(".") if module else []:
        spec = _spec(part, locations, tuple(sys.path))
        if spec is None:
            return files
        if spec.has_location:
            path = _local(spec.origin)
            if path is None:
                return files  # the standard library or an installed package, and so is all below it
            files.append(path)
        if spec.submodule_search_locations is None:
            return files  # a plain module: the names are its attributes
        locations = tuple(spec.submodule_search_locations)
    specs = [_spec(name, locations, tuple(sys.path)) for name in names]
    submodules = [_local(spec.origin) for spec in specs if spec and spec.has_location]
    return files + [path for path in submodules if path]


@functools.cache
def _packages(folder: Path) -> list[Path]:
    """The __init__.py files that run before a module of this folder: its packages'."""
    found = []
    while (folder / "__init__.py").is_file():
        found.append(folder / "__init__.py")
        folder = folder.parent
    return found


def reach(entries, leave_out=frozenset()) -> set[Path]:
    """Every local file the entry files run, transitively, and their packages; not entering (nor
    counting) the files in `leave_out`."""
    found, todo = set(), [Path(entry).resolve() for entry in entries]
    while todo:
        path = todo.pop()
        if path in found or path in leave_out:
            continue
        found.add(path)
        todo += _packages(path.parent)
        for level, module, names in source_of(path).imports:
            if level <= len(path.parents):  # beyond the top package, the import fails when it runs
                todo += _resolve(module, names, (str(path.parents[level - 1]),) if level else None)
    return found


def _name(path: Path, roots) -> str:
    """A file's name in a record: relative to the first of the roots holding it, else absolute."""
    root = next((root for root in roots if path.is_relative_to(root)), None)
    return path.relative_to(root).as_posix() if root else str(path)


def _combined(parts: dict) -> str:
    return _digest(json.dumps(parts, sort_keys=True).encode())


def identity(entries, kind_sources=()) -> dict[str, str]:
    """The code entry files run with some kinds ((kind, module file) pairs), by name: each file the
    entries reach without entering any kind module ("attnscore/model.py": its digest), and each
    kind's own code ("kind euclid": a digest of the files its module reaches beyond those)."""
    kind_modules = {path.resolve() for _, path in kinds.BUILT_IN} | {
        Path(module).resolve() for _, module in kind_sources
    }
    shared = reach(entries, kind_modules)
    roots = (PACKAGE.parent, Path.cwd().resolve())  # the checkout holding the package, the working folder
    parts = {_name(path, roots): source_of(path).digest for path in shared}
    for kind, module in kind_sources:
        own = reach([module]) - shared
        parts[f"kind {kind}"] = _combined({_name(path, roots): source_of(path).digest for path in own})
    STORE.save()
    return dict(sorted(parts.items()))  # in one order: Snakemake compares params as text


def code_version(script, kind_sources=()) -> str:
    """A digest of the code a workflow script runs with its kinds: a param of its rule, since
    Snakemake's own tracking sees only the script file."""
    return _combined(identity([script], kind_sources))


def run_code(kind: str, source) -> dict[str, str]:
    """The code that makes a training run's weights with this kind (registered in `source`)."""
    return identity(TRAINING, [(kind, source)])


def changes(old: dict, new: dict) -> list[str]:
    """What differs between two identities, in words, kinds first."""
    names = sorted(
        (name for name in old.keys() | new.keys() if old.get(name) != new.get(name)),
        key=lambda name: (not name.startswith("kind "), name),
    )
    return [f"the code of kind {name[5:]!r}" if name.startswith("kind ") else f"the code of {name}" for name in names]
