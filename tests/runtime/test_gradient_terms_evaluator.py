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
from mtdsl.ir.derivative_nodes import GradLabel, GradValue, UnitVector
from mtdsl.ir.roles import GradientBlocks
from mtdsl.runtime.assemble import evaluate_kernel
from mtdsl.runtime.evaluate import rows
from mtdsl.runtime.evaluate.evaluator import Evaluator
from mtdsl.runtime.named import VECTOR_AXIS, Named, apply, union_axes
from mtdsl.runtime.gradients import forward, points
from mtdsl.runtime.gradients import run as gradient_run

from .test_gradients import (MESSAGE_PASSING_PROGRAM, assert_matches_finite_differences, small_batch, with_gradients,
                             write)


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


class _TermEvaluator(Evaluator):
    """The oracle: a term as the derivative pass wrote it, its `UnitVector`s and `GradValue`s
    evaluated as they mean (the lowering to the derived kernel replaces them, so the run's
    evaluator has no rule for them)."""

    def _eval_UnitVector(self, expr, scope):
        direction = self.evaluate(expr.direction, scope)
        return Named(direction.axes + (VECTOR_AXIS,), np.eye(3, dtype=self.bindings.dtype)[direction.data])

    def _eval_GradValue(self, expr, scope):
        table = self.gradient_table(expr.tensor, expr.wrt)
        row = self.evaluate(expr.row, scope)
        directions = [self.evaluate(d, scope) for d in expr.directions]
        components = [self.evaluate(s.expr, scope) for s in expr.components]
        properties = [self.evaluate(s.expr, scope) for s in expr.properties]
        return table.gather(row, directions, components, properties)


def _equal(left: Named, right: Named, message):
    axes = union_axes(left, right)
    a, b = np.asarray(left.expand(axes)), np.asarray(right.expand(axes))
    shape = np.broadcast_shapes(a.shape, b.shape)
    np.testing.assert_array_equal(np.broadcast_to(a, shape), np.broadcast_to(b, shape), err_msg=message)


@pytest.mark.parametrize("which", ["soap_power_spectrum.mt", "message passing"])
def test_the_evaluator_runs_the_derived_term_kernels(tmp_path, monkeypatch, which):
    """Every term runs as its derived kernel, whose body and condition equal the term's own
    coefficient and conditions bit for bit, over the term's scope in the run."""
    model = mtdsl.compile(_program(tmp_path, which), backend="interpreter")
    frames = small_batch()
    kernels = []
    term_kernel = forward.GradientRun.term_kernel

    def checked(run, kernel, gradient, k):
        derived = term_kernel(run, kernel, gradient, k)
        kernels.append(derived)
        term = gradient.terms[k]
        scope = points.term_scope(run, kernel, gradient, term)
        oracle = _TermEvaluator(run.module, run.bindings, gradients=run.gradient_tables, over_rows=True)
        message = f"{kernel.name} w.r.t. {gradient.wrt}, term {k}"
        _equal(run.evaluator.evaluate(derived.body, scope), oracle.evaluate(term.coefficient, scope), message)
        if derived.where is not None:
            where = Named.scalar(True)
            for condition in (kernel.where, term.where):
                if condition is not None:
                    where = apply(np.logical_and, where, oracle.evaluate(condition, scope))
            _equal(run.evaluator.evaluate(derived.where, scope), where, message)
        return derived

    monkeypatch.setattr(forward.GradientRun, "term_kernel", checked)
    _gradients(model, frames)
    assert kernels, "no term ran"
    assert all(not list(_nodes_of_type(k.body, (GradValue, GradLabel, UnitVector))) for k in kernels)
    assert any(isinstance(n.tensor, GradientBlocks) for k in kernels for n in _nodes_of_type(k.body, ir.BlockRef)), \
        "no term reads a computed tensor's gradient: the oracle's GradValue is not compared"


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
             if isinstance(node, GradValue)]
    assert found, "no term reads a computed tensor's gradient"
    kernel, k, node = found[0]
    term = gradients[kernel.name].terms[k]
    derived = run.term_kernel(kernel, gradients[kernel.name], k)
    assert any(isinstance(n, ir.BlockRef) and isinstance(n.tensor, GradientBlocks) for n in _nodes(derived.body))
    scope = points.term_scope(run, kernel, gradients[kernel.name], term)
    # the plain rules (the row rules are numpy's), reading the run's tables; the term by the oracle's rules
    plain = _TermEvaluator(model.module, bindings, gradients=run.gradient_tables)
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


#: vector shapes whose derivative the lowering once refused or crashed on: a branchwise derivative
#: puts `c ? e[a] : 0.0` in a vector's place, and a vector-valued sum is a `Reduce` of vectors
VECTOR_SHAPES = {
    "vector select": "sum(p in P.from(i)) norm(P.distance[p] > 1.5 ? P.vector[p] : 2.0 * P.vector[p])",
    "vector sum": "norm(sum(p in P.from(i)) P.vector[p] * exp(-P.distance[p]))",
    "dot of a select": "sum(p in P.from(i)) dot(P.distance[p] > 1.5 ? P.vector[p] : -P.vector[p], S.positions[i])",
}


def _shape_program(shape):
    return f"""
model shapes
hyper cutoff = 3.0
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)

tensor t
    samples (i)
  = {VECTOR_SHAPES[shape]}

output t with gradients(positions, strain, cell)
"""


@pytest.mark.parametrize("shape", sorted(VECTOR_SHAPES))
def test_vector_shapes_have_derived_kernels(tmp_path, monkeypatch, shape):
    model = mtdsl.compile(write(tmp_path, _shape_program(shape)), backend="interpreter")
    kernels = []
    term_kernel = forward.GradientRun.term_kernel
    monkeypatch.setattr(forward.GradientRun, "term_kernel",
                        lambda run, *a: kernels.append(term_kernel(run, *a)) or kernels[-1])
    assert_matches_finite_differences(model, small_batch(), "t", ["positions", "strain", "cell"])
    assert kernels and all(k is not None for k in kernels), "a term without its derived kernel"


@pytest.mark.parametrize("backend", ["cpp", "llvm"])
def test_native_runner_compiles_a_vector_sum_term(tmp_path, backend):
    """The native runner compiles the same derived kernels (a vector-valued sum once crashed
    the lowering on every backend): its gradients equal the interpreter's."""
    path = write(tmp_path, _shape_program("vector sum"))
    frames = small_batch()
    expected = mtdsl.compile(path, backend="interpreter")(frames, gradients=["positions", "strain", "cell"])["t"]
    model = mtdsl.compile(path, backend=backend)
    model.reverse_gradients = False  # the forward-mode terms, not the reverse products
    found = model(frames, gradients=["positions", "strain", "cell"])["t"]
    for block, reference in zip(found.blocks(), expected.blocks()):
        for wrt in ("positions", "strain", "cell"):
            assert block.gradient(wrt).samples == reference.gradient(wrt).samples
            np.testing.assert_allclose(block.gradient(wrt).values, reference.gradient(wrt).values,
                                       rtol=1e-12, atol=1e-14, err_msg=wrt)
