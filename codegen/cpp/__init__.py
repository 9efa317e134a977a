"""The C++ backend: the loop nest of each kernel (`codegen/schedule/kernel.py`) printed as C++
(`printer.py`), assembled into one module source (`module.py`, `codegen/templates/`); compiling is
`codegen/cache.py`'s.

Each kernel becomes one `extern "C"` function that fills the dense buffer of the
kernel's index grid and returns error bits (0: fine; otherwise the runtime
evaluates the kernel with the interpreter, which raises the precise error or
decides). Its run-time arguments are listed by `RenderedKernel.arrays` and
`.scalars` as the typed arguments of `codegen/schedule/abi.py` (`abi.PairsField("P", "vectors")`...)
that `runtime/native/compiled.py` binds against `Bindings`; compile-time tables
(radial splines, Clebsch-Gordan) are `abi.ConstTable(name)` arrays kept in
`RenderedModule.constants`.
"""

from ..schedule.plan import Unsupported
from .module import render, render_module, render_sph_function, render_sph_gradient_function
from .printer import comment, int_literal, real_literal
from .templates import templates

__all__ = ["Unsupported", "comment", "int_literal", "real_literal", "render", "render_module", "render_sph_function",
           "render_sph_gradient_function", "templates"]
