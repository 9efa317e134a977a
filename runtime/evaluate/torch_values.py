"""The evaluator on torch values: a module's kernels, differentiable to every order.

Reverse mode for `Model.to_torch()` (see docs/torch.md): the values of a model
come from its backend; their vector-Jacobian products are torch autograd through
this evaluation of the same IR by the one evaluator (`evaluator.py`), given
torch values for the positions, cells, pair vectors and distances, parameters
and TensorMaps:

- `+ - * / ^ %`, `?:`, the elementary functions, `norm`, `dot`: torch ops;
- comparisons, `and`, `or`, `not`: numpy booleans of the detached values (piecewise
  constant: no derivative, as in mtdsl/ir/passes/autodiff.py);
- sums: `torch.einsum` and `index_add` over the CSR segments of `P.from(i)`;
- `sph`, `soap_radial`, `cosine_cutoff`, `gto`: torch formulas (`builtins.py`), so
  their derivatives of every order are torch autograd's; `cg` is a constant.

Everything about integers (index values, label lookups, block and sample
positions, masks, missing entries) is numpy, as in a numpy run; the positions
that block accesses read are kept in a `StructureMemo` for the next evaluation
on the same structure. Kernels are assembled by `runtime/assemble.py` (its torch
case: the labels from the numpy assembly of the flat position of each point, the
values gathered from the torch body).
"""

from __future__ import annotations

import numpy as np
import torch

from mtdsl.ir import nodes as ir

from ..assemble import evaluate_kernel
from ..bindings import Bindings
from .dispatch import from_numpy
from .evaluator import Evaluator, StructureMemo  # noqa: F401 - StructureMemo: tests replace it here


def evaluate(module: ir.Module, batch, pairs: dict, positions, cell, params: dict, inputs: dict,
             precomputed: dict | None = None, skip=(), memo: StructureMemo | None = None) -> dict:
    """Every kernel of `module` with torch values; returns {tensor name: TensorMap}.

    `batch` and `pairs` give the structure (types, systems, neighbour lists); the
    float values come from `positions` [atoms, 3] and `cell` [systems, 3, 3], the
    parameters `params` {name: tensor} and the input TensorMaps `inputs` (torch values).
    The kernels of `precomputed` {name: TensorMap with torch values} are not evaluated:
    their tensors are those (the descriptors, runtime/torch_descriptors.py); the kernels of
    `skip` (read only by those) are not evaluated at all. `memo`: a `StructureMemo` of earlier
    evaluations of the same structure (a new one when None).
    """
    dtype = positions.dtype
    systems = module.systems[0].name
    floats = {(systems, "positions"): positions, (systems, "cell"): cell}
    system_index = from_numpy(np.asarray(batch.system, dtype=np.int64))
    for declaration in module.pairs:
        pair = pairs[declaration.name]
        first = from_numpy(np.asarray(pair.first, dtype=np.int64))
        second = from_numpy(np.asarray(pair.second, dtype=np.int64))
        shifts = from_numpy(np.asarray(pair.cell_shifts)).to(dtype)
        vectors = positions[second] - positions[first] + torch.einsum("pa,pab->pb", shifts, cell[system_index[first]])
        floats[(declaration.name, "vector")] = vectors
        floats[(declaration.name, "distance")] = torch.sqrt(torch.sum(vectors * vectors, dim=1))
    # (numpy floats of the structure's side, masks and counts, in float64 as the reference's)
    bindings = Bindings({systems: batch}, pairs, dict(params), dtype=np.float64)
    evaluator = Evaluator(module, bindings, floats, memo if memo is not None else StructureMemo(), torch_values=True)
    bindings.tensors.update(inputs)
    results = {}
    precomputed = precomputed or {}
    for kernel in module.kernels:
        if kernel.name in skip:
            continue
        tensor = precomputed.get(kernel.name)
        if tensor is None:
            tensor = evaluate_kernel(evaluator, kernel, torch_dtype=dtype)
        results[kernel.name] = bindings.tensors[kernel.name] = tensor
    return results
