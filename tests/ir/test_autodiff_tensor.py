"""Derivatives with respect to the entries of a computed tensor (`autodiff.differentiate_tensor`).

The terms of `dT/dU` are checked against central finite differences of the interpreter: the
tangent `T_dot = sum over the terms, over their binders, of coefficient * U_dot[target]` is
evaluated by the interpreter as an ordinary kernel of `T`'s labels (the target, an access of
`U`, read from a TensorMap `U_dot` of `U`'s layout), and compared with
`(T(U + h U_dot) - T(U - h U_dot)) / 2h`, `T` evaluated by the interpreter with `U`'s values
replaced, for the power spectrum (reading the spherical expansion twice) and the programs of
the gradient tests (message passing over `P.second[p]`, pair samples, every built-in).
"""

import dataclasses

import numpy as np
import pytest

from mtdsl.compile import check_and_lower
from mtdsl.ir.passes import autodiff as ad
from mtdsl.ir.derivative_nodes import GradientKernel
from mtdsl.ir.walk import children
from mtdsl.ir import nodes as ir
from mtdsl.runtime.assemble import evaluate_kernel
from mtdsl.runtime.evaluate.evaluator import Evaluator
from mtdsl.runtime.model import Model
from mtdsl.tensor import TensorBlock, TensorMap

from ..codegen.test_native_gradients import systems
from ..runtime import test_gradients
from ..runtime.test_gradients import EXAMPLES

DOT = "u_dot"


def power_spectrum():
    return check_and_lower(EXAMPLES / "soap_power_spectrum.mt", max_angular=2, n_radial=3)[1]


def program(tmp_path, name):
    path = tmp_path / "program.mt"
    path.write_text(getattr(test_gradients, name))
    return check_and_lower(path)[1]


def values(module, frames):
    """Bindings with every tensor of `module` evaluated by the interpreter."""
    bindings = Model(module, backend="interpreter").bind(frames, {})
    for kernel in module.kernels:
        bindings.tensors[kernel.name] = evaluate_kernel(Evaluator(module, bindings), kernel)
    return bindings


def replaced(tensor: TensorMap, arrays) -> TensorMap:
    return TensorMap(tensor.keys, [TensorBlock(np.asarray(a, dtype=float), b.samples, list(b.components), b.properties)
                                   for a, b in zip(arrays, tensor.blocks())])


def tangent_kernel(kernel: ir.TensorKernel, gradient: GradientKernel) -> ir.TensorKernel:
    """`kernel` whose body is the sum of the terms of `gradient` contracted with `U_dot`."""
    body = None
    for term in gradient.terms:
        resolved = {}
        for name, expr in term.aliases:
            resolved[name] = ad.substitute(expr, resolved)
        indices = {b.name for b in kernel.indices}
        binders = list(term.binders)
        aliased = []
        for n, e in resolved.items():  # an alias of a kernel index: `i := P.first[p]` is `p in P.from(i)`
            if n not in indices:
                continue
            found = [k for k, b in enumerate(binders) if isinstance(b.domain, ir.PairsDomain)
                     and e == ir.Data(b.domain.pairs, "first", (ir.Var(b.name),))]
            if found:
                binder = binders[found[0]]
                binders[found[0]] = ir.Binder(binder.name, ir.PairsFrom(binder.domain.pairs, ir.Var(n)))
            else:
                aliased.append(ir.Binary("eq", ir.Var(n), e))
        resolved = {n: e for n, e in resolved.items() if n not in indices}
        target = ad.substitute(term.target, resolved)
        assert isinstance(target, ir.BlockRef)
        read = ir.BlockRef(DOT, target.keys, target.samples, target.components, target.properties)
        coefficient = ad.substitute(term.coefficient, resolved)
        product = ir.Binary("mul", coefficient, read)
        where = ad.substitute(term.where, resolved)
        for condition in aliased:
            where = condition if where is None else ir.Binary("and", where, condition)
        if binders:
            product = ir.Reduce(tuple(binders), product, where)
        elif where is not None:
            product = ir.Select(where, product, ir.Const(0.0))
        body = product if body is None else ir.Binary("add", body, product)
    return dataclasses.replace(kernel, body=body)


def check_against_finite_differences(module, name, read, frames, step=1e-6, seed=0):
    bindings = values(module, frames)
    gradient = ad.differentiate_tensor(module, name, read)
    assert gradient is not None and gradient.directions == ()
    assert all(isinstance(t.target, ir.BlockRef) and t.target.tensor == read for t in gradient.terms)
    rng = np.random.default_rng(seed)
    u = bindings.tensors[read]
    u_dot = [rng.normal(size=b.values.shape) for b in u.blocks()]
    bindings.tensors[DOT] = replaced(u, u_dot)
    kernel = module.kernel(name)
    ours = evaluate_kernel(Evaluator(module, bindings), tangent_kernel(kernel, gradient))

    def shifted(sign):
        bindings.tensors[read] = replaced(u, [np.asarray(b.values) + sign * step * d for b, d in zip(u.blocks(), u_dot)])
        try:
            return evaluate_kernel(Evaluator(module, bindings), kernel)
        finally:
            bindings.tensors[read] = u

    plus, minus = shifted(1.0), shifted(-1.0)
    assert ours.keys == plus.keys
    scale = max(np.abs(np.asarray(b.values)).max(initial=0.0) for b in ours.blocks())
    assert scale > 0
    for mine, p, m in zip(ours.blocks(), plus.blocks(), minus.blocks()):
        expected = (np.asarray(p.values) - np.asarray(m.values)) / (2 * step)
        np.testing.assert_allclose(np.asarray(mine.values), expected, rtol=0, atol=1e-6 * scale)


def test_the_power_spectrum_with_respect_to_the_expansion():
    module = power_spectrum()
    gradient = ad.differentiate_tensor(module, "ps", "rho")
    # one term per factor, at the entry it reads; `m` escapes (the target reads it), the other
    # factor is the coefficient
    assert len(gradient.terms) == 2
    for term, (mine, other) in zip(gradient.terms, (("n1", "n2"), ("n2", "n1"))):
        assert [b.name for b in term.binders] == ["m"]
        assert term.target.tensor == "rho"
        assert [s.expr for s in term.target.properties] == [ir.Var(mine)]
        reads = [e for e in _nodes(term.coefficient) if isinstance(e, ir.BlockRef)]
        assert [r.properties[0].expr for r in reads] == [ir.Var(other)]
    check_against_finite_differences(module, "ps", "rho", systems())


@pytest.mark.parametrize("name, pairs", [
    ("MESSAGE_PASSING_PROGRAM", [("h2", "h1"), ("angles", "h1")]),
    ("PAIRS_PROGRAM", [("coord", "bond")]),
    ("BUILTINS_PROGRAM", [("e", "f")]),
])
def test_programs_of_the_gradient_tests(tmp_path, name, pairs):
    module = program(tmp_path, name)
    for tensor, read in pairs:
        check_against_finite_differences(module, tensor, read, systems())


def test_no_derivative_when_not_read_and_errors(tmp_path):
    module = power_spectrum()
    assert ad.differentiate_tensor(module, "rho", "ps") is None  # rho does not read ps
    with pytest.raises(ad.AutodiffError, match="does not read itself"):
        ad.differentiate_tensor(module, "rho", "rho")
    with pytest.raises(ad.AutodiffError, match="not a computed tensor"):
        ad.differentiate_tensor(module, "ps", "nothing")
    path = tmp_path / "program.mt"
    path.write_text("""
model program
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
tensor u
    samples (i)
  = sum(p in P.from(i)) P.distance[p]
tensor t
    samples (i)
  = u[i] > 1.0 ? u[i] : 0.0
output t
""")
    module = check_and_lower(path)[1]
    # a condition on u's values is piecewise constant: the derivative is branchwise
    gradient = ad.differentiate_tensor(module, "t", "u")
    assert [str(t.coefficient) for t in gradient.terms] == ["((u{}[atoms(S):i] > 1.0) ? 1.0 : 0.0)"]


def _nodes(expr):
    yield expr
    for child in children(expr):
        yield from _nodes(child)
