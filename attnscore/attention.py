"""The registry of attention kinds: scoring functions registered by name, all called the same way.

A kind is a function ``fn(q, k, v, causal, dropout_p, **options)``: q, k, v shaped (batch,
heads, time, head_dim) in, a tensor of v's shape out. ``options`` are the kind's own settings,
given per kind in the config (``model.attention_options: {euclid: {p: 2}}``). The built-in kinds
are the modules of attnscore/scores/, imported when this module is; a plugin kind registers
itself when its module is imported, which ``model.attention_plugins`` asks for (``load_plugins``).
"""

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from attnscore.files import Explained
from attnscore.kinds import BUILT_IN, Kind, declaration_problem, options_problem

FIXED_ARGUMENTS = 5  # q, k, v, causal, dropout_p: every kind takes these first
KINDS: dict[str, Callable] = {}
NO_DEFAULT = inspect.Parameter.empty  # an option without a default: as in a signature


def dot_score_flops(head_dim: int, **options) -> float:
    return 2.0 * head_dim  # a multiply and an add per dimension


def register(
    name: str, options: dict | None = None, parameters: dict[str, float] | None = None, score_flops=dot_score_flops
):
    """Decorator: make ``fn(q, k, v, causal, dropout_p, **options)`` the attention kind ``name``.

    ``options``: the kind's options by name, each a JSON schema of the values it takes, with a
    "default" unless the config must give it, e.g. ``{"p": {"type": "number", "exclusiveMinimum":
    0, "default": 2.0}}``; number and integer options take finite numbers only. The one statement
    of what a kind takes: the config check reads it (from the source where it is a literal, else
    by importing the module), and fn's keyword arguments after the first five must be exactly
    these options and parameters, with the declared defaults.

    ``parameters``: learnable per-head parameters by name (literal names, for the config check),
    with their initial value: the model passes each as an ``nn.Parameter`` of shape (n_heads,).

    ``score_flops(head_dim, **options)``: the forward arithmetic of one score per (query, key)
    pair and head, by the formula: what the comparison at equal compute counts (dot's unless given).
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"attention kind name {name!r}: use lower-case letters, digits and _ (a config name)")
    options = {} if options is None else options
    problem = declaration_problem(name, options)
    if problem:
        raise ValueError(problem)
    parameters = {key: float(value) for key, value in (parameters or {}).items()}

    def add(fn):
        known = KINDS.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(
                f"attention kind {name!r} is already registered by {known.__module__}.{known.__qualname__}"
            )
        problem = _signature_problem(fn, options, parameters)
        if problem:
            raise ValueError(f"attention kind {name!r}: {problem}")
        # The module calling register (not always fn's own, for register("x")(f) with f imported):
        # its code identity reaches fn's module through its imports, as the workflow's does.
        registering = sys._getframe(1).f_globals.get("__file__") or inspect.getsourcefile(fn)
        fn.declaration = Kind(options, tuple(parameters), Path(registering))
        fn.head_parameters = parameters
        fn.score_flops = score_flops
        KINDS[name] = fn
        return fn

    return add


def _signature_problem(fn: Callable, options: dict, parameters: dict) -> str | None:
    """Where a kind's function disagrees with its declaration (arguments, defaults), or None."""
    takes = list(inspect.signature(fn).parameters.values())[FIXED_ARGUMENTS:]
    defaults = {p.name: p.default for p in takes if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    untaken = [key for key in [*options, *parameters] if key not in defaults]
    if untaken and not any(p.kind is p.VAR_KEYWORD for p in takes):
        return f"its function takes no argument(s) {untaken} for its options and parameters; add them to it"
    undeclared = [key for key in defaults if key not in options and key not in parameters]
    if undeclared:
        return f"its function's argument(s) {undeclared} are not declared; add them to register's options="
    for option, schema in options.items():
        default, declared = defaults.get(option, NO_DEFAULT), schema.get("default", NO_DEFAULT)  # **options: no default
        if default != declared:
            default, declared = ("none" if value is NO_DEFAULT else repr(value) for value in (default, declared))
            return (
                f"option {option}: its function's default is {default}, its declaration's {declared}; make them equal"
            )
    return None


class PluginError(Explained, ImportError):
    """A module of model.attention_plugins that cannot be imported."""


def load_plugins(modules) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as err:
            raise PluginError(
                f"model.attention_plugins: importing {module!r} failed ({type(err).__name__}: {err}); "
                "fix the module or take it out of the list"
            ) from err


def source_of(kind: str, plugins=()) -> Path:
    """The file of the module that registers a kind."""
    load_plugins(plugins)
    return get(kind).declaration.source


def get(kind: str) -> Callable:
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; known kinds: {sorted(KINDS)}")
    return KINDS[kind]


def head_parameters(kind: str) -> dict[str, float]:
    return dict(get(kind).head_parameters)


def check_options(kind: str, options: dict) -> None:
    problem = options_problem(kind, get(kind).declaration, options)
    if problem:
        raise ValueError(problem)


class Unsupported(ValueError):
    """A kind that cannot run on these inputs here (e.g. a CUDA kernel on a CPU)."""


def attention(q, k, v, kind="dot", *, causal=True, dropout_p=0.0, **options):
    """Attention of a registered kind; a learnable parameter not given takes its initial value."""
    for name, initial in head_parameters(kind).items():
        if name not in options:
            options[name] = torch.full((q.shape[1],), initial, dtype=torch.float32, device=q.device)
    return get(kind)(q, k, v, causal, dropout_p, **options)


# The built-in kinds, imported by name (attnscore/scores/__init__.py says why).
for _module, _ in BUILT_IN:
    importlib.import_module(_module)
