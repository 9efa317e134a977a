"""The derivative kernels a native module is rendered with: the gradient terms of
`mtdsl/ir/passes/terms.py` (scatter kernels, else term kernels) appended to the module, and the
fused kernels of `codegen/schedule/fuse.py` that join them with the values' pass over pairs.

This step stays in the backends (not in `mtdsl/ir/passes/`): which kernels fuse is decided by
the plan (`codegen/schedule/plan.py: plan_fused`), the loops each kernel will have.
"""

from __future__ import annotations

import dataclasses

from mtdsl.errors import Unsupported
from mtdsl.ir import nodes as ir
from mtdsl.ir.passes.terms import gradient_term_kernels, scatter_kernel

from .fuse import fused_kernels


def extended_module(module: ir.Module, gradients: dict) -> tuple[ir.Module, dict]:
    """`module` with the kernels of the terms of `gradients` appended, and what binds them:
    `{(kernel, wrt, k): ScatterTerm}` (written into the rows) and `{(kernel, wrt, k): term kernel
    name}` (a dense buffer over the term's axes, scattered by `runtime/gradients/forward.py`), the latter
    only for tensors some of whose terms have no scatter kernel (else a failed scatter run falls
    back to the interpreter: half the code to compile); and the fused kernels (`module.fused`,
    `codegen/schedule/fuse.py`): with the values, `{(kernel, (wrt, ...)): (fused kernel name, term keys)}`,
    and of terms alone, `{(kernel, wrt): [(fused kernel name, term keys, drivers), ...]}`."""
    scatters, extra = {}, []
    kernels = {k.name: k for k in module.kernels}
    complete = set()  # (kernel, wrt) whose every term has a scatter kernel: no term kernels for them
    for wrt, by_kernel in (gradients or {}).items():
        for name, gradient in by_kernel.items():
            found = 0
            for k, term in enumerate(gradient.terms):
                try:
                    scatter, lowered_kernel = scatter_kernel(module, kernels[name], gradient, k, term)
                except Unsupported:
                    continue
                scatters[(name, wrt, k)] = scatter
                extra.append(lowered_kernel)
                found += 1
            if found == len(gradient.terms):
                complete.add((name, wrt))
    lowered = [(key, kernel) for key, kernel in (gradient_term_kernels(module, gradients) if gradients else [])
               if key[:2] not in complete]
    names = {key: kernel.name for key, kernel in lowered}
    extra += [k for _, k in lowered]
    if not extra:
        return module, {"terms": names, "scatters": scatters, "fused": {}, "fused_terms": {}}
    extended = dataclasses.replace(module, kernels=tuple(module.kernels) + tuple(extra))
    # each tensor's values and the terms of its gradient that share its pass over pairs (codegen/schedule/fuse.py)
    fused, with_values, fused_terms = fused_kernels(extended, scatters)
    extended = dataclasses.replace(extended, fused=tuple(extended.fused) + fused)
    return extended, {"terms": names, "scatters": scatters, "fused": with_values, "fused_terms": fused_terms}
