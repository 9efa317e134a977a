"""The native runner's per-kernel fallback is a value (`runtime/native/block_lookup.py: Fallback`), never an exception.

A block access whose lookup table would be too large has no native form: binding
the kernel's arguments returns a `Fallback`, the runner records its reason and the
evaluator computes that kernel, so the result equals the evaluator's.
"""

from __future__ import annotations

import ase
import numpy as np

from mtdsl.codegen.schedule import abi
from mtdsl.runtime.native import block_lookup
from mtdsl.runtime.assemble import evaluate_kernel
from mtdsl.runtime.bindings import Bindings
from mtdsl.runtime.native.block_lookup import Fallback
from mtdsl.runtime.native.compiled import Arguments, compile_module
from mtdsl.runtime.evaluate.evaluator import Evaluator
from mtdsl.runtime.model import initial_parameters
from mtdsl.systems import as_batch, neighbors

from . import modules


def _bind(module):
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])
    batch = as_batch([water])
    pairs = {p.name: neighbors(batch, p.cutoff, full=p.full) for p in module.pairs}
    bindings = Bindings({"S": batch}, pairs, initial_parameters(module, 0))
    for declaration in module.tensormaps:
        bindings.tensors[declaration.name] = modules.features(batch, lmax=1, width=4)
    return bindings


def test_a_table_too_large_falls_back_by_value(monkeypatch):
    module = modules.convolution(lmax=1, width=4, n_k=2)
    native = compile_module(module, backend="cpp")
    expected = _bind(module)
    evaluator = Evaluator(module, expected)
    for kernel in module.kernels:
        expected.tensors[kernel.name] = evaluate_kernel(evaluator, kernel)

    monkeypatch.setattr(block_lookup, "MAX_TABLE", 1)  # every block-access table is too large
    bindings = _bind(module)
    readers = [name for name, kernel in native.kernels.items() if any(isinstance(d, abi.BlockTable) for d in kernel.rendered.arrays)]
    assert readers, "the convolution reads its input TensorMap through lookup tables"
    bound = Arguments(native, bindings).bind(native.kernels[readers[0]].rendered, [np.zeros(1)])
    assert isinstance(bound, Fallback) and "too large" in bound.reason
    found = native.run(bindings, all_tensors=True)
    assert set(readers) <= set(native.last_run_fallbacks)
    for name, tensor in found.items():
        reference = expected.tensors[name]
        np.testing.assert_array_equal(tensor.keys.array, reference.keys.array)
        for mine, theirs in zip(tensor.blocks(), reference.blocks()):
            np.testing.assert_allclose(mine.values, theirs.values, rtol=1e-12, atol=1e-12)
