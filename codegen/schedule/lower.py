"""Plan + middle decisions -> the loop-nest IR, as `mtdsl compile --emit nest` shows it.

`lower_module(module)` gives, for each kernel a backend compiles, a `nest.Kernel`:
the plan's loops (the parallel driver marked, CSR segments, equality bindings)
with their guards, the tables of the tabulation pass at the level where they
are filled, the zero Clebsch-Gordan and triangle-rule skips at the level where
their factor is known, the local accumulator and its flush, and the write
into the kernel's buffer; fused kernels show their shared loops once and each
member inside them. Expressions the nest does not lower yet are shown by their
loop-IR text (`nest.Source`). The renderers take the same decisions from the
same functions (`schedule/passes.py`); the helper routines they print from
the nest itself (`schedule/sph.py`) follow the kernels.
"""

from __future__ import annotations

from mtdsl.ir import nodes as ir

from .. import plan as planning
from ..plan import Unsupported, free_vars
from . import nest
from .presence import guarded, guarded_plan
from .factors import is_real_product, product_factors, triangle_degrees, zero_skips
from .tabulation import tabulation_candidates


def _level_of(variables, position: dict) -> int:
    """The nest level (0: before every loop, k + 1: inside loop k) where `variables` are all bound."""
    return max((position[v] + 1 for v in variables if v in position), default=0)


def _member(plan: planning.KernelPlan, buffer: str, start: int, parallel: bool) -> tuple:
    """The statements of `plan.loops[start:]` and its write, as a nest (levels 0..start-1 are outside)."""
    position = {loop.var: k for k, loop in enumerate(plan.loops)}
    placed: dict = {}  # level -> statements placed there before its inner loop

    def put(level: int, statement) -> None:
        placed.setdefault(max(level, start), []).append(statement)

    tabulated = tabulation_candidates(plan)
    # the triangle rule first where the degrees are bound, before what else is placed there
    if plan.schedule == "accumulate" and is_real_product(plan.body):
        for factor in zero_skips(product_factors(plan.body, tabulated.keys())):
            degrees = triangle_degrees(factor)
            put(_level_of(set().union(*(free_vars(d) for d in degrees)), position),
                nest.Guard(nest.Source(f"triangle({', '.join(str(d) for d in degrees)})", nest.BOOL),
                           "the triangle rule of a Clebsch-Gordan factor"))
            put(_level_of(free_vars(factor), position),
                nest.Guard(nest.Source(f"{factor} != 0", nest.BOOL), "a zero coefficient adds nothing"))
    count = 0
    for node in _nodes(plan.body):
        if id(node) in tabulated:
            over, level, row = tabulated[id(node)]
            count += 1
            put(level, nest.Table(f"T{count}", over, row or "", nest.Source(str(node))))
    target = buffer
    indices = tuple(b.name for b in plan.kernel.indices)
    local = plan.local
    if local is not None:
        target = "A"
        inner = tuple(loop.var for loop in plan.loops[local:] if loop.is_index)
        size = 1
        for loop in plan.loops[local:]:
            if loop.is_index:
                size *= planning.static_size(loop.domain)
        put(local, nest.Alloc("A", size))
    write = nest.Write(target, indices if local is None else inner, nest.Source(str(plan.body)),
                       plan.schedule == "accumulate")

    def level(k: int) -> tuple:
        """The statements at level k: what is placed there, then loop k (or the write, innermost)."""
        here = list(placed.get(k, []))
        if k == len(plan.loops):
            return tuple(here + [write])
        loop = plan.loops[k]
        body = tuple(nest.Guard(nest.Source(str(g), nest.BOOL), "where") for g in loop.guards) + level(k + 1)
        over = str(loop.domain) + (f" = {loop.expr}" if loop.expr is not None else "")
        here.append(nest.Loop(loop.var, over, loop.kind, body, parallel and k == 0))
        if local is not None and k == local:
            here.append(nest.Write(buffer, indices, nest.Source("A[" + ", ".join(inner) + "]"), True))
        return tuple(here)

    return level(start)


def _nodes(expr):
    """Every node of an expression tree, outermost first (not into sums: their bodies are theirs)."""
    yield expr
    if isinstance(expr, ir.Reduce):
        return
    for child in (getattr(expr, name) for name in getattr(expr, "__dataclass_fields__", ())):
        for item in child if isinstance(child, tuple) else (child,):
            if isinstance(item, (ir.Call, ir.Binary, ir.Unary, ir.Select, ir.Reduce, ir.BlockRef)):
                yield from _nodes(item)


def lower_kernel(kernel: ir.TensorKernel) -> nest.Kernel:
    plan = planning.plan_kernel(kernel)
    body = tuple(nest.Guard(nest.Source(str(g), nest.BOOL), "where") for g in plan.pre_guards)
    return nest.Kernel(kernel.name, plan.schedule, body + _member(plan, "out", 0, plan.parallel))


def lower_fused(fused: planning.FusedPlan) -> nest.Kernel:
    """The shared loops of a fused kernel once, each member's own loops and write inside them."""
    first = fused.plans[0]
    inner: tuple = ()
    for j, plan in enumerate(fused.plans):
        inner += _member(plan, f"out{j}", fused.shared, False)
    for k in reversed(range(fused.shared)):
        loop = first.loops[k]
        guards = tuple(nest.Guard(nest.Source(str(g), nest.BOOL), "where") for g in loop.guards)
        over = str(loop.domain) + (f" = {loop.expr}" if loop.expr is not None else "")
        inner = (nest.Loop(loop.var, over, loop.kind, guards + inner, fused.parallel and k == 0),)
    names = ", ".join(plan.kernel.name for plan in fused.plans)
    return nest.Kernel(f"{fused.fused.name} = ({names})", "fused", inner)


def lower_module(module: ir.Module) -> tuple:
    """`(kernels, unsupported)`: a `nest.Kernel` per kernel and fused kernel with a compiled form, and
    `{name: reason}` for the others (the interpreter runs them)."""
    kernels, unsupported = [], {}
    for kernel in module.kernels:
        try:
            kernels.append(lower_kernel(guarded(kernel)))  # as rendered (schedule/module.py)
        except Unsupported as error:
            unsupported[kernel.name] = str(error)
    for _, _, plan in planning.fused_plans(module, unsupported, guarded_plan):
        kernels.append(lower_fused(plan))
    return kernels, unsupported


def render(module: ir.Module) -> str:
    """The text of `mtdsl compile --emit nest`."""
    kernels, unsupported = lower_module(module)
    parts = [nest.text(kernel) for kernel in kernels]
    parts += [f"# {name}: no compiled form ({reason}); the interpreter runs it" for name, reason in unsupported.items()]
    return "\n\n".join(parts)
