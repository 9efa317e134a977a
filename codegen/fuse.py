"""Which kernels are computed in one pass: a tensor's values and the terms of its gradient.

The scatter kernels of a gradient (`codegen/terms.py`) loop over the same pairs as the values'
kernel and evaluate the same pair tables (`sph`, the radial splines, the cutoff) and their
derivatives. `fused_kernels` groups, for each tensor and each gradient, the values' kernel with
the scatter kernels that can start with its loops (`plan.plan_fused` decides, member by member)
as an `ir.FusedKernel`, appended to the module: the renderers write one function that enters
each pair once and adds into the values' buffer and the gradient rows in the same pass. The
members stay in the module as kernels of their own: the runtime runs the fused kernel when
that gradient is asked for, and the separate kernels otherwise (`runtime/compiled.py`).

Only terms that read no other gradient are candidates (a term reading another tensor's
gradient rows needs that gradient first, which the values' pass does not have yet).
"""

from __future__ import annotations

import dataclasses

from mtdsl.ir import nodes as ir

from . import plan as planning
from .plan import Unsupported


FUSED_PREFIX = "·fused·"


def fused_name(kernel: str, wrt: str) -> str:
    return f"{FUSED_PREFIX}{kernel}·{wrt}"


def _reads_gradients(kernel: ir.TensorKernel) -> bool:
    """Whether a scatter kernel reads the rows or values of another gradient (reserved sources)."""
    found = []

    def visit(node):
        if isinstance(node, ir.Data) and node.source.startswith(("·rows·", "·dense·")):
            found.append(node)
        elif isinstance(node, ir.BlockRef) and node.tensor.startswith("·grad·"):
            found.append(node)
        elif isinstance(node, ir.PairsDomain) and node.pairs.startswith("·rows·"):
            found.append(node)
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            for f in dataclasses.fields(node):
                value = getattr(node, f.name)
                for item in value if isinstance(value, tuple) else (value,):
                    if isinstance(item, tuple):
                        for inner in item:
                            visit(inner)
                    else:
                        visit(item)

    visit(kernel)
    return bool(found)


def fused_kernels(module: ir.Module, scatters: dict) -> tuple[tuple[ir.FusedKernel, ...], dict]:
    """The fused kernels of `module` (which holds the scatter kernels `scatters`:
    `{(kernel, wrt, k): ScatterTerm}`), and for each `(kernel, wrt)` the fused kernel's name and
    the term keys it computes: `{(kernel, wrt): (name, ((kernel, wrt, k), ...))}`."""
    kernels = {k.name: k for k in module.kernels}
    pair_systems = {p.name: p.systems for p in module.pairs}
    by_gradient: dict = {}
    for key in scatters:
        by_gradient.setdefault(key[:2], []).append(key)
    fused, members = [], {}
    for (name, wrt), keys in by_gradient.items():
        values = kernels.get(name)
        if values is None:
            continue
        chosen = []
        for key in sorted(keys):
            scatter = kernels[scatters[key].name]
            if _reads_gradients(scatter):
                continue
            trial = ir.FusedKernel(fused_name(name, wrt), (name, scatter.name))
            try:
                planning.plan_fused(trial, kernels, pair_systems)
            except Unsupported:
                continue
            chosen.append(key)
        if not chosen:
            continue
        kernel = ir.FusedKernel(fused_name(name, wrt), (name,) + tuple(scatters[k].name for k in chosen))
        fused.append(kernel)
        members[(name, wrt)] = (kernel.name, tuple(chosen))
    return tuple(fused), members
