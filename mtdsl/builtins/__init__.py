"""The registry of built-in functions: one module per built-in (the elementary functions share
`elementary.py`), each defining a `Builtin` (`spec.py`) that says its signature, its derivative,
its numpy and torch forms, its native form (a primitive of the printers, or an expansion into other
built-ins) and its cost. Everything that treats a built-in by name reads it here:

- the checker (mtdsl/lang/builtins.py: signatures, kinds, equivariance) and constant folding;
- lowering (mtdsl/ir/lower.py: compile-time options, definitions by selects);
- the derivative passes (mtdsl/ir/passes/autodiff.py: `partials`, piecewise constant, bilinear);
- the IR verifier (known names, integer results);
- the reference evaluator (runtime/evaluate/dispatch.py: numpy and torch forms);
- the native backends: `mtdsl/ir/passes/native_forms.py` replaces every expansion before printing,
  so the printers know only their fixed table of primitives; the planner's cost of a call.

Adding an elementwise built-in is one module here plus its tests
(docs/builtins.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterator, Optional

from .spec import Builtin, Param

__all__ = ["Builtin", "Param", "lookup", "get", "registered", "names"]


def _discover() -> dict[str, Builtin]:
    """Every module of this package but `spec` defines `BUILTIN` or a tuple `BUILTINS`: a new
    module is registered by existing (no list to edit). Each imports only `spec`, `mtdsl.ir.nodes`,
    `mtdsl.math` and its sibling built-ins (tests/test_architecture.py checks their own imports)."""
    found: dict[str, Builtin] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "spec":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        defined = getattr(module, "BUILTINS", None) or (module.BUILTIN,)
        for builtin in defined:
            if builtin.name in found:
                raise RuntimeError(f"built-in {builtin.name!r} defined twice ({info.name}.py)")
            found[builtin.name] = builtin
    return found


_REGISTRY = _discover()


def lookup(name: str) -> Optional[Builtin]:
    """The built-in `name`, or None."""
    return _REGISTRY.get(name)


def get(name: str) -> Builtin:
    """The built-in `name` (KeyError when there is none)."""
    return _REGISTRY[name]


def registered(public: Optional[bool] = None) -> Iterator[Builtin]:
    """Every built-in (only the public ones, callable from programs, with `public=True`)."""
    return (b for b in _REGISTRY.values() if public is None or b.public == public)


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)
