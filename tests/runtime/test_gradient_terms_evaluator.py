"""Gradient terms in the one reference evaluator (runtime/evaluate/: derivative nodes, row rules).

The evaluator runs each term's derived kernel (mtdsl/ir/passes/terms.py), the one the native
runner compiles: the same gradients, bit for bit, as the term itself. The row rules
(`runtime/evaluate/rows.py`, on in a gradient run) are optimisations of the plain rules: a
gradient computed with them off gives the same blocks. The derivative nodes read the
gradient tables through `dispatch`: on torch values they give torch values.
"""

import dataclasses

import numpy as np
import pytest
import torch

import mtdsl
from mtdsl.ir import nodes as ir
from mtdsl.ir.passes import autodiff as ad
from mtdsl.ir.roles import GradientBlocks
from mtdsl.runtime.assemble import evaluate_kernel
from mtdsl.runtime.evaluate import rows
from mtdsl.runtime.evaluate.evaluator import Evaluator
from mtdsl.runtime.gradients import forward
from mtdsl.runtime.gradients import run as gradient_run

from .test_gradients import MESSAGE_PASSING_PROGRAM, small_batch, with_gradients, write


def _gradients(model, frames):
    result = model(frames, gradients=["positions", "strain"])
    return {(name, b, wrt): (np.asarray(block.gradient(wrt).values), np.asarray(block.gradient(wrt).samples.array))
            for name, tensor in result.items() for b, block in enumerate(tensor.blocks())
            for wrt in block.gradients_list()}


def _program(tmp_path, which):
    if which == "soap_power_spectrum.mt":
        return with_gradients(tmp_path, which, "positions, strain")
    return with_gradients(tmp_path, write(tmp_path, MESSAGE_PASSING_PROGRAM).name, "positions, strain")


@pytest.mark.parametrize("which", ["soap_power_spectrum.mt", "message passing"])
def test_row_rules_equal_the_plain_rules(tmp_path, monkeypatch, which):
    model = mtdsl.compile(_program(tmp_path, which), backend="interpreter")
    frames = small_batch()
    monkeypatch.setattr(rows, "MIN_ROWS", 1)  # the small batch's rows deduplicate too
    used = []
    unfold = rows.unfold
    monkeypatch.setattr(rows, "unfold", lambda *a: used.append(1) or unfold(*a))
    by_rows = _gradients(model, frames)
    assert used, "the row rules never deduplicated: the comparison tests nothing"

    def plain(module, bindings, **options):
        return Evaluator(module, bindings, **dict(options, over_rows=False))

    monkeypatch.setattr(gradient_run, "Evaluator", plain)
    expected = _gradients(model, frames)
    assert by_rows.keys() == expected.keys()
    for key, (values, samples) in expected.items():
        np.testing.assert_array_equal(by_rows[key][1], samples)
        np.testing.assert_allclose(by_rows[key][0], values, rtol=1e-12, atol=1e-14, err_msg=str(key))


@pytest.mark.parametrize("which", ["soap_power_spectrum.mt", "message passing"])
def test_the_evaluator_runs_the_derived_term_kernels(tmp_path, monkeypatch, which):
    model = mtdsl.compile(_program(tmp_path, which), backend="interpreter")
    frames = small_batch()
    kernels = []
    term_kernel = forward.GradientRun.term_kernel

    def recorded(run, kernel, gradient, k):
        kernels.append(term_kernel(run, kernel, gradient, k))
        return kernels[-1]

    monkeypatch.setattr(forward.GradientRun, "term_kernel", recorded)
    derived = _gradients(model, frames)
    assert kernels and all(k is not None for k in kernels), "a term without its derived kernel"
    assert all(not list(_nodes_of_type(k.body, (ad.GradValue, ad.GradLabel, ad.UnitVector))) for k in kernels)
    monkeypatch.setattr(forward.GradientRun, "term_kernel", lambda *a: None)  # the terms themselves
    terms = _gradients(model, frames)
    assert derived.keys() == terms.keys()
    for key, (values, samples) in terms.items():
        np.testing.assert_array_equal(derived[key][1], samples)
        np.testing.assert_array_equal(derived[key][0], values, err_msg=str(key))


def _nodes_of_type(expr, types):
    return (node for node in _nodes(expr) if isinstance(node, types))


def _nodes(expr):
    yield expr
    if dataclasses.is_dataclass(expr):
        for field in dataclasses.fields(expr):
            value = getattr(expr, field.name)
            for child in value if isinstance(value, tuple) else (value,):
                if dataclasses.is_dataclass(child):
                    yield from _nodes(child)


def test_derivative_nodes_read_torch_gradients(tmp_path):
    """A term reading a computed tensor's gradient (`GradValue`, and its derived kernel's
    `BlockRef(GradientBlocks)`) evaluated on torch gradient values is a torch value
    (differentiable), equal to the numpy evaluation."""
    model = mtdsl.compile(with_gradients(tmp_path, "soap_power_spectrum.mt", "positions"), backend="interpreter")
    bindings = model.bind(small_batch()[:1], {})
    bindings.present = bindings.kernels_present
    evaluator = Evaluator(model.module, bindings)
    for kernel in model.module.kernels:
        bindings.tensors[kernel.name] = evaluate_kernel(evaluator, kernel)
    gradients = model.gradient_kernels["positions"]
    outputs = [o.name for o in model.module.outputs]
    run = forward.compute_gradients(model.module, bindings, gradients, "positions", outputs)
    found = [(kernel, k, node) for kernel in model.module.kernels if kernel.name in gradients
             for k, term in enumerate(gradients[kernel.name].terms) for node in _nodes(term.coefficient)
             if isinstance(node, ad.GradValue)]
    assert found, "no term reads a computed tensor's gradient"
    kernel, k, node = found[0]
    term = gradients[kernel.name].terms[k]
    derived = run.term_kernel(kernel, gradients[kernel.name], k)
    assert any(isinstance(n, ir.BlockRef) and isinstance(n.tensor, GradientBlocks) for n in _nodes(derived.body))
    scope = forward._term_scope(run, kernel, gradients[kernel.name], term)
    # the plain rules (the row rules are numpy's), reading the run's tables
    plain = Evaluator(model.module, bindings, gradients=run.gradient_tables)
    table = run.gradient_tables[(node.tensor, node.wrt)]
    for expression in (term.coefficient, derived.body):
        table._flat = None
        numpy_values = plain.evaluate(expression, scope)
        flat = torch.tensor(table.flat, requires_grad=True)
        table._flat = flat
        torch_values = plain.evaluate(expression, scope)
        assert torch.is_tensor(torch_values.data) and torch_values.axes == numpy_values.axes
        np.testing.assert_allclose(torch_values.data.detach().numpy(), numpy_values.data, rtol=1e-12, atol=1e-14)
        torch_values.data.sum().backward()
        assert flat.grad is not None and bool(flat.grad.abs().sum() > 0)
