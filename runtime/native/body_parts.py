"""A kernel run term by term: the buffers of its parts added (`with_parts`).

A native module renders a kernel whose body is several terms, one of them a sum, as its
first term plus one kernel per other term (`codegen/schedule/parts.py: first_terms`, a step
of the one rendering, `codegen/build.py: rendering`); what the runtime owns is running them:
which part kernels run, on how many threads, and the kernel left to the evaluator when a
part has no compiled form. The whole body stays the kernel's definition for the evaluator
and the gradients.
"""

from __future__ import annotations

import dataclasses

from mtdsl.ir import nodes as ir


def reads_pairs(kernel: ir.TensorKernel) -> bool:
    """Whether a kernel sums over or reads a pair list (its work grows with the pairs)."""
    stack = [kernel.body, kernel.where, kernel.indices]
    while stack:
        node = stack.pop()
        if isinstance(node, (tuple, list)):
            stack.extend(node)
        elif isinstance(node, (ir.PairsFrom, ir.PairsDomain)):
            return True
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            stack.extend(getattr(node, f.name) for f in dataclasses.fields(node))
    return False


def with_parts(compiled, parts: dict):
    """`compiled` (a `runtime/native/compiled.py` CompiledModule whose library renders the kernels of
    `parts`, `{kernel: its part kernels}`, by their first terms) running those kernels by parts: each
    adds its other terms' buffers; one whose parts did not all render is left to the evaluator
    (its native kernel alone computes only the first term)."""
    compiled.parts = {}
    compiled.part_of = {part.name: name for name, kernels in parts.items() for part in kernels}
    for name, kernels in parts.items():
        if all(k.name in compiled.kernels for k in kernels[1:]):
            # a term without pairs (the central atom's) is a few operations per atom: one thread,
            # not a parallel region whose threads may wait for a busy machine's cores
            compiled.parts[name] = tuple((compiled.kernels[k.name], 0 if reads_pairs(k) else 1)
                                         for k in kernels[1:])
        elif name in compiled.kernels:
            del compiled.kernels[name]
            compiled.fallbacks[name] = "a term of its body has no compiled form"
    return compiled
