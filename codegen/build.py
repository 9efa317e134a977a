"""A native library from the IR: render (through the rendering cache), then compile or JIT, then load.

`build(module, backend, ...)` is what `runtime.native.compiled.compile_module` wraps in a
`CompiledModule`: this module owns everything up to the loaded library, the runtime
everything after (binding arguments, running, assembling, adding the buffers of a kernel's
terms). `rendering(...)` is the one rendering step: `build`, `render` (`mtdsl.codegen.render`)
and `mtdsl compile --emit cpp|llvm|nest` take it (`listing` is what the latter two print), and
it splits a kernel of several terms first (`schedule/parts.py: first_terms`), so what is shown
is what is compiled and run.
"""

from __future__ import annotations

import os

import numpy as np

from mtdsl.ir import nodes as ir

from . import cache, cpp, llvm
from .rendered import RenderedModule, ir_text, slim_rendering, with_extra
from .schedule import plan as planning
from .schedule.derived import extended_module
from .schedule.parts import first_terms


# how each backend renders a module, and what `--emit <backend>` shows of the rendering
_RENDERERS = {"cpp": cpp.render_module, "llvm": llvm.render_module}
_LISTINGS = {"cpp": lambda rendered: rendered.source, "llvm": llvm.listing}


def rendering(module: ir.Module, backend: str = "cpp", dtype=np.float64, gradients: dict | None = None,
              extra: tuple = ()) -> tuple:
    """`(rendered, terms, parts)`: the `RenderedModule` `build` compiles `module` from (with the terms
    of its gradient kernels and the `extra` kernels) on `backend`, through the rendering cache; what
    binds the terms (`schedule/derived.py: extended_module`); and the kernels of several terms
    (`schedule/parts.py: body_parts`, `{kernel: its part kernels}`), each rendered as its first
    term, its other terms rendered after the `extra` kernels as kernels of their own (the run adds
    their buffers). A cache hit skips rendering (and lowering the gradient terms): the rendering is
    stored by its IR (the kernels' first terms, then the extra and part kernels), its gradient
    kernels (their `repr`, every field), the dtype and the renderers' sources."""
    if backend not in _RENDERERS:
        raise ValueError(f"unknown native backend {backend!r} (this module provides 'cpp' and 'llvm')")
    gradients = gradients or {}
    dtype_name = np.dtype(dtype).name
    module, other_terms, parts = first_terms(module)
    extra = tuple(extra) + other_terms
    text = ir_text(module, gradients, extra)
    key = cache.rendering_key(backend, text, dtype_name)
    stored = cache.load_rendering(key)
    if not (isinstance(stored, tuple) and len(stored) == 3 and stored[0] == text
            and isinstance(stored[1], RenderedModule) and stored[1].dtype == dtype_name):
        with planning.remembered_plans():
            extended, terms = extended_module(with_extra(module, extra), gradients)
            stored = (text, _RENDERERS[backend](extended, dtype_name), terms)
        try:
            cache.store_rendering(key, slim_rendering(stored, module))
        except OSError:
            pass  # a read-only cache: render every time
    _, rendered, terms = stored
    return rendered, terms, parts


def listing(rendered: RenderedModule, emit: str) -> str:
    """What `mtdsl compile --emit nest|cpp|llvm` prints of a rendering: the loop nests it was
    printed from (`schedule/lower.py`), or its C++ source / LLVM IR (after a comment naming
    each function's tensor)."""
    if emit == "nest":
        return rendered.nest
    if emit in _LISTINGS:
        return _LISTINGS[emit](rendered)
    raise ValueError(f"unknown code to emit {emit!r} (cpp, llvm or nest)")


def render(module: ir.Module, emit: str, dtype="float64", gradients: dict | None = None, extra: tuple = (),
           backend: str | None = None) -> str:
    """The generated code of `module` as `build` renders it and a model runs it (`rendering`, then
    `listing`): `emit` "cpp" or "llvm" on that backend, "nest" the loop nests of `backend`'s rendering
    (a model's backend: "cpp" or "llvm"; the C++ one for the interpreter's, or None)."""
    if emit not in ("nest", *_LISTINGS):
        raise ValueError(f"unknown code to emit {emit!r} (cpp, llvm or nest)")
    if emit != "nest":
        backend = emit
    elif backend not in _RENDERERS:
        backend = "cpp"
    rendered, _, _ = rendering(module, backend, dtype, gradients, extra)
    return listing(rendered, emit)


def build(module: ir.Module, backend: str = "cpp", dtype=np.float64, gradients: dict | None = None,
          extra: tuple = ()) -> tuple:
    """`(rendered, library, path, cache_hit, terms, parts)` of `module` with the terms of its gradient kernels
    (`gradients`: `{wrt: {kernel: GradientKernel}}`, `mtdsl/ir/passes/terms.py`) and the `extra` kernels, on
    `backend` ("cpp": a shared library through the kernel cache; "llvm": JIT-compiled by llvmlite), from
    the rendering of `rendering` (`parts`: its kernels of several terms, `{kernel: its part kernels}`)."""
    if backend not in _RENDERERS:
        raise ValueError(f"unknown native backend {backend!r} (this module provides 'cpp' and 'llvm')")
    if backend == "cpp":
        # OpenMP threads that spin between parallel regions compete with the serial Python assembly and
        # with other libraries on small machines: let them sleep (read once, when libgomp is loaded)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    rendered, terms, parts = rendering(module, backend, dtype, gradients, extra)
    if backend == "llvm":  # LLVM IR through llvmlite, JIT-compiled (mtdsl.codegen.llvm)
        library = llvm.JITLibrary(rendered)
        return rendered, library, library.path, library.cache_hit, terms, parts
    library, path, hit = cache.load(rendered.source)
    return rendered, library, path, hit, terms, parts
