"""What a compiled module is rendered from, and its text for `mtdsl compile --emit nest|cpp|llvm`.

`compile_module` (`compiled.py`) and `rendering` take the same step here (`native_inputs`: the
kernels' first terms, their other terms as extra kernels, `body_parts.py`) and then ask the same
backend with the same arguments (`codegen/backends.py`: `render` is what `load` compiles), so the
emitted code is the code that runs: the loop nests, C++ or LLVM IR of the library a model builds.
"""

from __future__ import annotations

import numpy as np

from mtdsl.codegen.backends import BACKENDS, backend as native_backend
from mtdsl.ir import nodes as ir

from .body_parts import first_terms

EMITS = ("nest", "cpp", "llvm")


def model_arguments(model, gradients: dict | None = None) -> dict:
    """What a model (`runtime/model.py`) gives `compile_module`: its module, backend, dtype and
    gradient kernels (every declared gradient's unless `gradients`, `{wrt: {kernel: GradientKernel}}`,
    says; `{}`: the values only, as for a call without gradients). `mtdsl compile --emit` renders the same."""
    return {"module": model.module, "backend": model.backend, "dtype": model.dtype,
            "gradients": model.gradient_kernels if gradients is None else gradients}


def native_inputs(module: ir.Module, gradients: dict | None = None, extra: tuple = ()) -> tuple:
    """`(rendered module, backend arguments, body parts)`: what `compile_module` gives its backend
    for `module`: each kernel of several terms reduced to its first term, the kernels of the other
    terms appended to `extra` (`body_parts.py: first_terms`), and `body_parts(module)`."""
    rendered, others, parts = first_terms(module)
    return rendered, {"gradients": gradients, "extra": tuple(extra) + others}, parts


def rendering(module: ir.Module, backend: str = "cpp", dtype=np.float64, gradients: dict | None = None,
              extra: tuple = ()):
    """The `RenderedModule` that `compile_module` with the same arguments compiles (through the
    rendering cache, without compiling it): the code in `.source`, its loop nests in `.nest`."""
    rendered, arguments, _ = native_inputs(module, gradients, extra)
    return native_backend(backend).render(rendered, dtype=dtype, **arguments)


def emitted(module: ir.Module, emit: str, backend: str = "cpp", dtype=np.float64, gradients: dict | None = None,
            extra: tuple = ()) -> str:
    """The text of `mtdsl compile --emit EMIT`: of `compile_module(module, backend, dtype, gradients=...,
    extra=...)`'s rendering, the loop nests ("nest", the nests `backend` printed), the C++ source
    ("cpp") or the LLVM IR ("llvm"), each of the rendering of its own backend."""
    if emit not in EMITS:
        raise ValueError(f"unknown code to emit {emit!r} ({', '.join(EMITS)})")
    if emit != "nest" or backend not in BACKENDS:  # (the interpreter's model: the nest of the default backend)
        backend = "cpp" if emit == "nest" else emit
    rendered = rendering(module, backend, dtype, gradients, extra)
    return rendered.nest if emit == "nest" else native_backend(emit).listing(rendered)
