"""Attention kinds as the config sees them, without importing torch: their names and the
options each takes, read from the source of the functions ``@register("name")`` decorates.

The Snakefile checks a config with this on every run, dry runs included, where importing torch
would cost most of the time. attnscore.attention checks a kind's options at run time from the
live function's signature, by the same rule (``options_problem``).
"""

import ast
import functools
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

from jsonschema import Draft202012Validator

BUILT_IN = Path(__file__).with_name("attention.py")
FIXED_ARGUMENTS = 5  # q, k, v, causal, dropout_p: every kind takes these first
# Kinds the benchmark also times beside a kind, where they run: dot_triton is euclid's Triton
# kernel with the dot-product score, so euclid against it is the score's cost, and dot_triton
# against dot our kernel's gap to PyTorch's fused SDPA.
CONTROLS = {"euclid": "dot_triton"}


@dataclass(frozen=True, eq=False)
class Kind:
    options: tuple[str, ...]  # the keyword options it takes
    required: tuple[str, ...]  # those without a default
    numeric: tuple[str, ...] = ()  # those whose default is a number, or annotated float or int: numbers only
    any_option: bool = False  # **options: it takes any
    source: Path | None = None  # the module that registers it
    ranges: dict = field(default_factory=dict)  # option -> JSON-schema bounds, from @register(..., options=)
    parameters: tuple[str, ...] = ()  # its learnable per-head parameters (register's parameters=): no options


def options_problem(name: str, kind: Kind, given: dict) -> str | None:
    """What is wrong with giving these options to the kind, or None: unknown or missing options,
    a number option given text, NaN or infinity, a value outside the kind's declared range."""
    unknown = [option for option in given if option not in kind.options and not kind.any_option]
    missing = [option for option in kind.required if option not in given]
    if unknown or missing:
        problem = f"takes no option(s) {unknown}" if unknown else f"needs option(s) {missing}"
        return f"attention kind {name!r} {problem}; its options: {list(kind.options)}"
    for option, value in given.items():
        if option in kind.numeric and type(value) not in (int, float):
            return f"attention kind {name!r} takes a number for option {option}, not {value!r}"
        if option in kind.numeric and not math.isfinite(value):
            return f"attention kind {name!r} takes a finite number for option {option}, not {value!r}"
        errors = (
            sorted(Draft202012Validator(kind.ranges[option]).iter_errors(value), key=str)
            if option in kind.ranges
            else []
        )
        if errors:
            return f"attention kind {name!r}, option {option}: {errors[0].message} (its declared range: {kind.ranges[option]})"
    return None


def _is_number_annotation(annotation) -> bool:
    return isinstance(annotation, ast.Name) and annotation.id in ("float", "int")


def _signature(args: ast.arguments, source: Path, ranges: dict, parameters: tuple[str, ...] = ()) -> Kind:
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = list(zip(positional, defaults, strict=True)) + list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    params = [(arg, default) for arg, default in params[FIXED_ARGUMENTS:] if arg.arg not in parameters]
    return Kind(
        options=tuple(arg.arg for arg, _ in params),
        required=tuple(arg.arg for arg, default in params if default is None),
        numeric=tuple(
            arg.arg
            for arg, default in params
            if isinstance(default, ast.Constant)
            and type(default.value) in (int, float)
            or _is_number_annotation(arg.annotation)
        ),
        any_option=args.kwarg is not None,
        source=source,
        ranges=ranges,
        parameters=parameters,
    )


def declared_ranges(decorator: ast.Call) -> dict:
    """The `options=` of ``@register("name", options={...})``: a literal dict of JSON-schema
    bounds per option, e.g. {"p": {"exclusiveMinimum": 0}}."""
    for keyword in decorator.keywords:
        if keyword.arg == "options":
            return ast.literal_eval(keyword.value)
    return {}


def registers(decorator: ast.expr) -> str | None:
    """The kind a decorator registers: ``@register("name")`` or ``@<module>.register("name")``
    with a literal name (and perhaps ``options=``, ``parameters=``); None for any other decorator."""
    if not isinstance(decorator, ast.Call) or len(decorator.args) != 1:
        return None
    func, name = decorator.func, decorator.args[0]
    called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if called == "register" and isinstance(name, ast.Constant) and isinstance(name.value, str):
        return name.value
    return None


def _parameter_names(decorator: ast.Call) -> tuple[str, ...]:
    """The names of the learnable parameters ``@register("name", parameters={...})`` declares:
    the literal keys of its dict."""
    for keyword in decorator.keywords:
        if keyword.arg == "parameters" and isinstance(keyword.value, ast.Dict):
            return tuple(
                key.value for key in keyword.value.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)
            )
    return ()


@functools.cache
def declared_in(path: Path) -> dict[str, Kind]:
    """The kinds a module's source registers, by name (cached: the Snakefile's config check and
    its code hashes both ask; callers copy before changing it)."""
    kinds = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if registers(decorator):
                    kinds[registers(decorator)] = _signature(
                        node.args, path, declared_ranges(decorator), _parameter_names(decorator)
                    )
    return kinds


def module_file(module: str) -> Path:
    """The source file of an importable module, found without running it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as err:
        raise ImportError(f"{type(err).__name__}: {err}") from err
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ImportError("no Python module by that name on the path")
    return Path(spec.origin)


def known_kinds(plugins=()) -> tuple[dict[str, Kind], list[str]]:
    """Every kind the package and the plugin modules declare, and the problems finding them: a
    module that is not there or does not parse, and a kind declared twice (a plugin may not
    replace a built-in kind, nor another plugin's)."""
    kinds, problems = dict(declared_in(BUILT_IN)), []
    declared_by = dict.fromkeys(kinds, "attnscore.attention (built in)")
    for module in plugins:
        try:
            declared = declared_in(module_file(module))
        except (ImportError, OSError, SyntaxError) as err:
            problems.append(
                f"model.attention_plugins: cannot find {module!r} ({err}); put the module beside the Snakefile or install it"
            )
            continue
        for name in sorted(declared.keys() & declared_by.keys()):
            problems.append(
                f"model.attention_plugins: {module!r} registers {name!r}, a kind {declared_by[name]} registers already; "
                "give its kind another name"
            )
        declared_by.update(dict.fromkeys(declared, module))
        kinds.update({name: kind for name, kind in declared.items() if name not in kinds})
    return kinds, problems


def plugins_of(kind: str, plugins) -> list[str]:
    """The plugin modules that register a kind (none for a built-in one): all of them that a run
    of that kind imports, and so all that are part of its settings."""
    found = []
    for module in plugins:
        try:
            if kind in declared_in(module_file(module)):
                found.append(module)
        except (ImportError, OSError, SyntaxError):
            pass  # known_kinds reports it
    return found
