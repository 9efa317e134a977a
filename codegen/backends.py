"""The native backends as the runtime sees them: a `Backend` protocol and the registry of backends.

The runtime imports from the code generator only this, the kernel ABI (`schedule/abi.py`: what
each argument of a rendered kernel is) and the cache; which module renders or loads a backend's
code is this registry's business. A new backend (a TorchScript operator, a GPU one) is a class
with `render` and `load` added to `BACKENDS`; `load` compiles what `render` gives for the same
arguments (`codegen/build.py: rendering`, the one rendering step, which also renders a kernel of
several terms term by term), so `mtdsl compile --emit` (`codegen/build.py: render`, `listing`)
shows what runs.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mtdsl.ir import nodes as ir

from . import build as building


class Backend(Protocol):
    name: str

    def render(self, module: ir.Module, dtype=np.float64, gradients: dict | None = None, extra: tuple = ()):
        """The `RenderedModule` that `load` compiles (same arguments): its code in `.source`, the loop
        nests the code was printed from in `.nest` (`mtdsl compile --emit nest`)."""

    def load(self, module: ir.Module, dtype=np.float64, gradients: dict | None = None, extra: tuple = ()) -> tuple:
        """`(rendered, library, path, cache_hit, terms, parts)`: `module` (with the terms of its gradient
        kernels and the `extra` kernels) rendered, compiled through the kernel cache and loaded;
        `rendered` a `RenderedModule` whose kernels' arguments are `schedule/abi.py` instances;
        `parts` the kernels rendered term by term, `{kernel: its part kernels}` (`schedule/parts.py`),
        whose buffers the run adds."""


class _Native:
    """A backend of `codegen/build.py`: `render` and `load` through its `rendering`."""

    def __init__(self, name: str):
        self.name = name

    def render(self, module: ir.Module, dtype=np.float64, gradients: dict | None = None, extra: tuple = ()):
        return building.rendering(module, self.name, dtype=dtype, gradients=gradients, extra=extra)[0]

    def load(self, module: ir.Module, dtype=np.float64, gradients: dict | None = None, extra: tuple = ()) -> tuple:
        return building.build(module, self.name, dtype=dtype, gradients=gradients, extra=extra)

    def __repr__(self):
        return f"Backend({self.name!r})"


BACKENDS: dict[str, Backend] = {"cpp": _Native("cpp"), "llvm": _Native("llvm")}


def backend(name: str) -> Backend:
    """The backend called `name`, or a `ValueError` naming those there are."""
    found = BACKENDS.get(name)
    if found is None:
        raise ValueError(f"unknown native backend {name!r} (this module provides {', '.join(map(repr, BACKENDS))})")
    return found
