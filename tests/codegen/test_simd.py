"""`#pragma omp simd` on innermost kernel-index loops (`codegen/schedule/kernel.py: simd_safe`): only where each
iteration writes its own entry and nothing in the loop reads or sets the error bits."""

import re

from mtdsl.codegen.cpp import render_module
from mtdsl.compile import compile
from mtdsl.ir import nodes as ir
from mtdsl.runtime.native.compiled import compile_module

from ..runtime.test_gradients import EXAMPLES
from .test_golden import coordination_module

V = ir.Var


def loops_after_pragma(source: str) -> list[list[str]]:
    """The lines of each loop that follows a `#pragma omp simd` (header to closing brace)."""
    lines, found = source.splitlines(), []
    for k, line in enumerate(lines):
        if line.strip() == "#pragma omp simd":
            indent = len(lines[k + 1]) - len(lines[k + 1].lstrip())
            block = [lines[k + 1]]
            for rest in lines[k + 2:]:
                block.append(rest)
                if rest.startswith(" " * indent + "}"):
                    break
            found.append(block)
    return found


def test_power_spectrum_gradient_channel_loops_are_simd():
    model = compile(EXAMPLES / "soap_power_spectrum.mt", backend="cpp")
    compiled = compile_module(model.module, backend="cpp", gradients=model.gradient_kernels)
    loops = loops_after_pragma(compiled.source)
    assert loops
    # the local accumulation of the power spectrum's gradient: `A[...] += p * T[...]` over the channels
    assert any(re.match(r"\s*A\d+\[", block[1]) for block in loops)
    for block in loops:
        assert block[0].lstrip().startswith("for (int64_t")
        assert not any("err" in line or "continue" in line for line in block), block


def test_no_simd_where_the_loop_checks_an_index():
    """P.vector[p, k] with k in 0..3 needs a bounds check (error bits): that loop stays scalar."""
    module = coordination_module()
    kernel = module.kernels[0]
    body = ir.Reduce(kernel.body.binders,
                     ir.Binary("mul", ir.Data("P", "vector", (V("p"), V("k"))), ir.Const(1.0)), kernel.body.where)
    indices = kernel.indices[:2] + (ir.Binder("k", ir.RangeDomain("r", 0, 4)),)
    module = _replace(module, kernel, indices, body)
    source = render_module(module).kernels["coordination"].source
    assert "mt_check" in source
    assert "#pragma omp simd" not in source
    # and the plain module has one
    assert "#pragma omp simd" in render_module(coordination_module()).kernels["coordination"].source


def _replace(module, kernel, indices, body):
    import dataclasses

    changed = dataclasses.replace(kernel, indices=indices, body=body)
    return dataclasses.replace(module, kernels=(changed,))
