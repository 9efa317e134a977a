"""What the C++ renderer produces (`codegen/cpp.py`), stored by the kernel cache.

Kept apart from the renderer so that a cache hit unpickles a rendering without
importing the renderer (`runtime/compiled.py: compile_module`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mtdsl.ir import nodes as ir

from . import plan as planning


@dataclass
class RenderedKernel:
    name: str  # the IR tensor name
    symbol: str  # the C function
    plan: planning.KernelPlan
    arrays: list  # descriptors, in argument order
    scalars: list
    source: str
    # scatter kernels: the driver's size (a scalar descriptor), and its loop runs the positions
    # [lo, hi) of the scalars ("driver_range", 0) and ("driver_range", 1); else None
    driver_count: object = None
    driver_var: object = None  # the driver's variable (a row variable of a scatter kernel's row map)


@dataclass
class RenderedModule:
    module: ir.Module
    dtype: str  # "float64" or "float32"
    source: str
    kernels: dict  # tensor name -> RenderedKernel
    unsupported: dict  # tensor name -> reason (evaluated by the interpreter)
    constants: dict = field(default_factory=dict)  # name -> numpy array (float64)
