"""What the C++ backend produces (`codegen/cpp/`), stored by the kernel cache.

Kept apart from the renderer so that a cache hit unpickles a rendering without
importing the renderer (`runtime/native/compiled.py: compile_module`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mtdsl.ir import nodes as ir

from .schedule import plan as planning


@dataclass
class RenderedKernel:
    name: str  # the IR tensor name
    symbol: str  # the C function
    plan: planning.KernelPlan
    arrays: list  # schedule/abi.py arguments (outputs first), in argument order
    scalars: list  # schedule/abi.py scalar arguments
    source: str
    # scatter kernels: the driver's size (an abi scalar argument), and its loop runs the positions
    # [lo, hi) of the scalars abi.DriverRange(0) and abi.DriverRange(1); else None
    driver_count: object = None
    driver_var: object = None  # the driver's variable (a row variable of a scatter kernel's row map)
    nest: str = ""  # the loop nest `source` was printed from, as text (`schedule/nest.py: text`)


@dataclass
class RenderedModule:
    module: ir.Module
    dtype: str  # "float64" or "float32"
    source: str
    kernels: dict  # tensor name -> RenderedKernel
    unsupported: dict  # tensor name -> reason (evaluated by the interpreter)
    constants: dict = field(default_factory=dict)  # name -> numpy array (float64)
    nest: str = ""  # `mtdsl compile --emit nest`: the loop nests `source` was printed from (`schedule/lower.py`)


# ---- what a rendering cached by IR depends on (codegen/build.py) ----------------------------


def slim_rendering(stored: tuple, module: ir.Module) -> tuple:
    """What a cache hit needs of a rendering: the plans reduced to their kernel's indices and
    whether they are parallel, the base module instead of the extended one (unpickling every IR
    node of the gradient kernels' plans took 50 ms, half the budget of a hit)."""
    text, rendered, terms = stored
    def slim(plan, loops=()):
        if hasattr(plan, "plans"):  # a fused kernel's (codegen/schedule/plan.py: FusedPlan): its members' plans,
            # the first with its shared loops (their guards dropped: the runtime reads the driver's)
            shared = tuple(dataclasses.replace(loop, guards=()) for loop in plan.plans[0].loops[:plan.shared])
            return dataclasses.replace(plan, fused=ir.FusedKernel(plan.fused.name, ()),
                                       plans=(slim(plan.plans[0], shared),) + tuple(slim(p) for p in plan.plans[1:]))
        indices_only = ir.TensorKernel(plan.kernel.name, plan.kernel.indices, (), (), (), (), ir.Const(0.0))
        return type(plan)(indices_only, plan.schedule, loops, (), None, plan.parallel, {})

    kernels = {}
    for name, kernel in rendered.kernels.items():
        kernels[name] = dataclasses.replace(kernel, plan=slim(kernel.plan))
    return text, dataclasses.replace(rendered, module=module, kernels=kernels), terms


def ir_text(module: ir.Module, gradients: dict, extra: tuple = ()) -> str:
    """What a rendering depends on besides the renderer: the IR and the gradient kernels, as text."""
    parts = [repr(module)]
    for wrt in sorted(gradients):
        for name in sorted(gradients[wrt]):
            parts.append(repr(gradients[wrt][name]))
    if extra:
        parts.append("extra kernels")
        parts += [repr(kernel) for kernel in extra]
    return "\0".join(parts)


def with_extra(module: ir.Module, extra: tuple) -> ir.Module:
    """`module` with the `extra` kernels appended (rendered after its own, before its gradient terms);
    the fused kernels among them (`ir.FusedKernel`) go to `module.fused`."""
    if not extra:
        return module
    kernels = tuple(k for k in extra if not isinstance(k, ir.FusedKernel))
    fused = tuple(k for k in extra if isinstance(k, ir.FusedKernel))
    return dataclasses.replace(module, kernels=tuple(module.kernels) + kernels, fused=tuple(module.fused) + fused)
