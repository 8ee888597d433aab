"""Attention kinds as the config sees them, without importing torch (the Snakefile checks a config
on every dry run): their names, options and modules, read from the ``register("name", options=...,
parameters=...)`` calls in the built-in kinds' and the plugins' source. A module whose
registration is not literal, or has no register call of its own, is imported and the registry
asked instead: slower, the same declaration. attnscore.attention checks options at run time by
the same rule (``options_problem``).
"""

import ast
import dataclasses
import functools
import importlib.util
import math
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

SCORES = Path(__file__).with_name("scores")
# The built-in kinds' modules, (module name, file): attnscore/scores/'s files but those named _*.
BUILT_IN = tuple((f"attnscore.scores.{path.stem}", path) for path in sorted(SCORES.glob("[!_]*.py")))
# Kinds the benchmark also times beside a kind, where they run: dot_triton is euclid's Triton
# kernel with the dot-product score, so euclid against it is the score's cost, and dot_triton
# against dot our kernel's gap to PyTorch's fused SDPA.
CONTROLS = {"euclid": "dot_triton"}


@dataclasses.dataclass(frozen=True, eq=False)
class Kind:
    """What a kind takes, as ``register`` declares it."""

    options: dict  # option -> JSON schema of its values; "default" absent: the config must give it
    parameters: tuple[str, ...] = ()  # its learnable per-head parameters (register's parameters=): no options
    source: Path | None = None  # the module that registers it

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(option for option, schema in self.options.items() if "default" not in schema)


def declaration_problem(name: str, options) -> str | None:
    """What is wrong with register's options= for a kind, or None."""
    if not isinstance(options, dict) or not all(
        isinstance(option, str) and isinstance(schema, dict) for option, schema in options.items()
    ):
        return (
            f'attention kind {name!r}: options= maps option names to JSON schemas, e.g. {{"p": {{"type": "number"}}}}'
        )
    for option, schema in options.items():
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as err:
            return f"attention kind {name!r}, option {option}: not a JSON schema ({err.message})"
        if "default" in schema and not Draft202012Validator(schema).is_valid(schema["default"]):
            return f"attention kind {name!r}, option {option}: its default {schema['default']!r} is outside its schema"
    return None


def options_problem(name: str, kind: Kind, given: dict) -> str | None:
    """What is wrong with giving these options to the kind, or None."""
    unknown = [option for option in given if option not in kind.options]
    missing = [option for option in kind.required if option not in given]
    if unknown or missing:
        problem = f"takes no option(s) {unknown}" if unknown else f"needs option(s) {missing}"
        return f"attention kind {name!r} {problem}; its options: {list(kind.options)}"
    for option, value in given.items():
        schema = kind.options[option]
        types = schema.get("type", [])
        numeric = {"number", "integer"} & set([types] if isinstance(types, str) else types)  # finite numbers only
        if numeric and isinstance(value, float) and not math.isfinite(value):
            return f"attention kind {name!r} takes a finite number for option {option}, not {value!r}"
        errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda error: error.validator != "type")
        if errors and errors[0].validator == "type" and numeric:
            return f"attention kind {name!r} takes a number for option {option}, not {value!r}"
        if errors:
            return f"attention kind {name!r}, option {option}: {errors[0].message} (its declaration: {schema})"
    return None


def _called(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _literal_declaration(call: ast.Call) -> tuple[str, Kind] | None:
    """The kind a ``register("name", ...)`` or ``<module>.register("name", ...)`` call declares, if
    its name, options= and parameters='s names are literals."""
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    name, parameters = call.args[0] if len(call.args) == 1 else None, keywords.get("parameters")
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str)) or None in keywords:
        return None  # register(NAME) or register("name", **settings)
    try:
        options = ast.literal_eval(keywords["options"]) if "options" in keywords else {}
    except (ValueError, TypeError):  # not a literal (or an unhashable key)
        return None
    if parameters is not None and not isinstance(parameters, ast.Dict):
        return None
    keys = parameters.keys if parameters else []
    if not all(isinstance(key, ast.Constant) and isinstance(key.value, str) for key in keys):
        return None
    return name.value, Kind(options or {}, tuple(key.value for key in keys))


@functools.cache
def declared_in(module: str, path: Path) -> dict[str, Kind]:
    """The kinds a module registers, by name (cached: callers copy before changing it), from its
    source where every register call is literal, else imported (PluginError where that fails).
    ValueError for a wrong declaration, SyntaxError for a file that does not parse."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _called(node) == "register"]
    declared = [_literal_declaration(call) for call in calls]
    if not calls or None in declared:
        from attnscore import attention  # imports torch: only for a module the source cannot tell

        before = set(attention.KINDS)
        attention.load_plugins([module])  # the kinds it registers: new ones, or its own if imported before
        declared = [
            (name, fn.declaration)
            for name, fn in attention.KINDS.items()
            if name not in before or fn.__module__ == module
        ]
    kinds = {}
    for name, kind in declared:
        problem = declaration_problem(name, kind.options)
        if problem:
            raise ValueError(problem)
        kinds[name] = dataclasses.replace(kind, source=path)
    return kinds


def module_file(module: str) -> Path:
    """The source file of an importable module, found without running it (else ImportError naming the fix)."""
    reason = "no Python module by that name on the path"
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as err:
        spec, reason = None, f"{type(err).__name__}: {err}"
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ImportError(
            f"model.attention_plugins: cannot find {module!r} ({reason}); put the module beside the Snakefile or install it"
        )
    return Path(spec.origin)


def known_kinds(plugins=()) -> tuple[dict[str, Kind], list[str]]:
    """Every kind the package and the plugins declare, and the problems finding them, a kind
    declared twice included (a plugin may not replace a built-in kind, nor another plugin's)."""
    kinds, problems, declared_by = {}, [], {}
    for module, path in [*BUILT_IN, *((module, None) for module in plugins)]:
        try:
            declared = declared_in(module, path or module_file(module))
        except ImportError as err:  # module_file's or attention.PluginError: it names the module and the fix
            problems.append(str(err))
            continue
        except (SyntaxError, ValueError) as err:
            problems.append(f"model.attention_plugins: {module!r}: {err}")
            continue
        for name in sorted(declared.keys() & declared_by.keys()):
            problems.append(
                f"model.attention_plugins: {module!r} registers {name!r}, a kind {declared_by[name]} registers already; "
                "give its kind another name"
            )
        declared_by.update(dict.fromkeys(declared, module if module in plugins else f"{module} (built in)"))
        kinds.update({name: kind for name, kind in declared.items() if name not in kinds})
    return kinds, problems


def plugins_of(kind: str, plugins) -> list[str]:
    """The plugin modules that register a kind (none for a built-in one): part of its settings."""
    found = []
    for module in plugins:
        try:
            if kind in declared_in(module, module_file(module)):
                found.append(module)
        except (ImportError, SyntaxError, ValueError):
            pass  # known_kinds reports it
    return found
