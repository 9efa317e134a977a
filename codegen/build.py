"""A native library from the IR: render (through the rendering cache), then compile or JIT, then load.

`build(module, backend, ...)` is what `runtime.native.compiled.compile_module` wraps in a
`CompiledModule`: this module owns everything up to the loaded library, the runtime
everything after (binding arguments, running, assembling). `render(module, emit)` is
`mtdsl compile --emit cpp|llvm|nest`.
"""

from __future__ import annotations

import os

import numpy as np

from mtdsl.ir import nodes as ir

from . import cache, cpp, llvm
from .rendered import ir_text, slim_rendering, with_extra
from .schedule.derived import extended_module
from .schedule import lower


def render(module: ir.Module, emit: str, dtype: str = "float64") -> str:
    """The generated code of `module` (`mtdsl compile --emit cpp|llvm|nest`): C++ source, LLVM IR,
    or the loop nest the C++ backend prints (`codegen/schedule/lower.py`)."""
    if emit == "nest":
        return lower.render(module)
    if emit == "cpp":
        return cpp.render(module, dtype)
    if emit == "llvm":
        return llvm.render(module, dtype)
    raise ValueError(f"unknown code to emit {emit!r} (cpp, llvm or nest)")


def build(module: ir.Module, backend: str = "cpp", dtype=np.float64, gradients: dict | None = None,
          extra: tuple = ()) -> tuple:
    """`(rendered, library, path, cache_hit, terms)` of `module` with the terms of its gradient kernels
    (`gradients`: `{wrt: {kernel: GradientKernel}}`, `mtdsl/ir/passes/terms.py`) and the `extra` kernels, on
    `backend` ("cpp": a shared library through the kernel cache; "llvm": JIT-compiled by llvmlite)."""
    gradients = gradients or {}
    if backend == "llvm":  # LLVM IR through llvmlite, JIT-compiled (mtdsl.codegen.llvm)
        return llvm.build(module, dtype=dtype, gradients=gradients, extra=extra)
    if backend != "cpp":
        raise ValueError(f"unknown native backend {backend!r} (this module provides 'cpp' and 'llvm')")
    # OpenMP threads that spin between parallel regions compete with the serial Python assembly and
    # with other libraries on small machines: let them sleep (read once, when libgomp is loaded)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # a cache hit skips rendering (and lowering the gradient terms): the rendered module is stored
    # by its IR and its gradient kernels (their `repr`, every field) next to the library
    dtype_name = np.dtype(dtype).name
    text = ir_text(module, gradients, extra)
    key = cache.rendering_key("cpp", text, dtype_name)
    stored = cache.load_rendering(key)
    if not (isinstance(stored, tuple) and len(stored) == 3 and stored[0] == text and stored[1].dtype == dtype_name):
        extended, terms = extended_module(with_extra(module, extra), gradients)
        stored = (text, cpp.render_module(extended, dtype_name), terms)
        cache.store_rendering(key, slim_rendering(stored, module))
    _, rendered, terms = stored
    library, path, hit = cache.load(rendered.source)
    return rendered, library, path, hit, terms
