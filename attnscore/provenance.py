"""What produced a result: config, code version, package versions, device, seed (standard
library only, so recording it costs nothing)."""

import ast
import copy
import functools
import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from attnscore import kinds

PACKAGE = Path(__file__).parent
PACKAGES = ["torch", "numpy", "pandas", "scipy", "matplotlib", "tokenizers", "snakemake", "tqdm", "tensorboard"]


def git_state(folder) -> dict:
    """The commit of the checkout holding `folder` and whether its tracked files were edited."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}  # not a git checkout (e.g. an unpacked release)


def collect(config: dict, device: str, seed: int) -> dict:
    """The provenance record; `device` describes where it ran (e.g. "cuda:0 (NVIDIA H100 80GB HBM3)")."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "config": config,
        "git": git_state(Path(__file__).parent),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": device,
        "seed": seed,
    }


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(Path(path).read_text(encoding="utf-8"), str(path))


def _imported_modules_of(node: ast.AST) -> set[Path]:
    """The attnscore modules the import statements within one syntax tree name."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            names = [alias.name for alias in sub.names]
        elif isinstance(sub, ast.ImportFrom) and sub.module:
            names = [sub.module, *(f"{sub.module}.{alias.name}" for alias in sub.names)]
        else:
            continue
        found.update(
            PACKAGE / f"{name.removeprefix('attnscore.')}.py" for name in names if name.startswith("attnscore.")
        )
    return {path for path in found if path.is_file()}


@functools.cache
def _imported_modules(path: Path) -> frozenset[Path]:
    """The attnscore modules one file imports, also inside functions (read, not run; cached:
    every script of the workflow imports the same few modules)."""
    return frozenset(_imported_modules_of(_tree(path)))


def package_modules(script, stop=()) -> list[Path]:
    """The attnscore modules a script runs: those it imports, and theirs in turn (not looking
    into the modules in `stop`)."""
    found, todo = set(), [Path(script)]
    while todo:
        new = _imported_modules(todo.pop()) - found
        found |= new
        todo.extend(new - set(stop))
    return sorted(found)


def _without_docstrings(node: ast.AST) -> ast.AST:
    """A copy of a syntax tree without docstrings: with comments and formatting, which the parser
    drops, they cannot change what the code computes."""
    node = copy.deepcopy(node)
    for sub in ast.walk(node):
        body = getattr(sub, "body", None)
        if isinstance(sub, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                sub.body = body[1:] or [ast.Pass()]
    return node


def _normalized(node: ast.AST) -> str:
    return ast.unparse(_without_docstrings(node))


def _top_level(tree: ast.Module) -> dict[str, ast.AST]:
    """The statements that bind each module-level name (definitions, assignments, imports)."""
    names = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update((sub.id, node) for sub in ast.walk(target) if isinstance(sub, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(((alias.asname or alias.name).split(".")[0], node) for alias in node.names)
    return names


@functools.cache
def kind_code(source: Path, kind: str) -> tuple[str, frozenset[Path]]:
    """A kind's own code: its registered function and whatever of its module that function uses,
    transitively (helpers, classes, constants), as normalized source; and the attnscore modules
    that code imports (euclid's Triton kernel). Another kind's function, or the decorator, is not
    part of it: editing euclid leaves dot's code as it was."""
    tree = _tree(source)
    top = _top_level(tree)
    function = next(
        (
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and any(kinds.registers(decorator) == kind for decorator in node.decorator_list)
        ),
        None,
    )
    if function is None:  # registered otherwise than by decorator: its whole module is its code
        return _normalized(tree), frozenset(_imported_modules_of(tree) - {Path(source)})
    parts, modules, seen = [], set(), set()
    todo = [copy.copy(function)]
    todo[0].decorator_list = []  # the registration, but for the initial values of learned parameters:
    for decorator in function.decorator_list:
        parts += [f"parameters={ast.unparse(kw.value)}" for kw in decorator.keywords if kw.arg == "parameters"]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        parts.append(_normalized(node))
        modules |= _imported_modules_of(node)
        todo.extend(top[sub.id] for sub in ast.walk(node) if isinstance(sub, ast.Name) and sub.id in top)
    return "\n".join(sorted(parts)), frozenset(modules - {Path(source)})


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def code_parts(entries: tuple, kind_sources: tuple = (), skip: tuple = ()) -> dict[str, str]:
    """Hashes of the code that files run: each attnscore module they import, transitively, as
    normalized source (docstrings, comments and formatting left out), except the modules in
    `skip`; the module registering the attention kinds (attention.py, or a plugin's file) is
    replaced by each kind's own code (`kind_sources`: (kind, source file) pairs), so that editing
    one kind changes nothing of another's. Keyed "kind <name>" and by module file name."""
    sources = {Path(source) for _, source in kind_sources}
    if sources:  # the built-in kinds' module: each kind's own code stands for it
        sources.add(kinds.BUILT_IN)
    parts, modules = {}, set()
    for kind, source in kind_sources:
        text, imported = kind_code(Path(source), kind)
        parts[f"kind {kind}"] = _digest(text)
        modules |= imported
    for entry in entries:
        modules |= set(package_modules(entry, stop=sources))
    scripts = {Path(entry) for entry in entries if Path(entry).parent != PACKAGE}  # Snakemake tracks those
    for module in sorted((modules | {Path(entry) for entry in entries}) - scripts - sources - {Path(s) for s in skip}):
        parts[module.name] = _digest(_normalized(_tree(module)))
    return parts


def code_version(script, kind_sources=()) -> str:
    """A short hash of the code a workflow script runs (code_parts): a param of its rule, so that
    Snakemake re-runs a job when that code changes (its own tracking sees only the script file)."""
    return _digest(json.dumps(code_parts((Path(script),), tuple(kind_sources)), sort_keys=True))


# Training's own modules and the kind's code make a run's weights; these cannot change a weight:
# atomic file writes, provenance and code hashes, reading the kinds' declarations from source,
# writing the per-step log to TensorBoard.
NOT_WEIGHTS = (PACKAGE / "io.py", PACKAGE / "provenance.py", PACKAGE / "kinds.py", PACKAGE / "steplog.py")


def run_code(kind: str, source) -> dict[str, str]:
    """The code that makes a run's weights (code_parts of training and its DDP launcher, with the
    kind's own code): part of the run's identity, so that an edit starts a new run."""
    return code_parts((PACKAGE / "train.py", PACKAGE / "launch.py"), ((kind, str(source)),), NOT_WEIGHTS)
