"""The walkers of `mtdsl/ir/walk.py` over the plain and the derivative IR, and the stages that
refuse derivative nodes: the planner (`Unsupported`, the reference evaluator then runs the kernel)
and the verifier."""

import dataclasses

import pytest

from mtdsl.codegen.schedule.plan import plan_kernel
from mtdsl.errors import Unsupported
from mtdsl.ir import nodes as ir
from mtdsl.ir.derivative_nodes import DERIVATIVE_NODES, GradLabel, GradRows, GradValue, UnitVector
from mtdsl.ir.passes.autodiff import differentiate
from mtdsl.ir.verify import VerifyError, verify
from mtdsl.ir.walk import children, derivative_node, domain_vars, free_vars

from ..codegen import modules

V = ir.Var


def test_free_vars_of_plain_and_derivative_nodes():
    row, alpha = V("g"), V("·α")
    value = GradValue("rho", "positions", row, (alpha,), (ir.Slot("value", V("m")),), (ir.Slot("value", V("n")),))
    assert free_vars(value) == {"g", "·α", "m", "n"}
    assert free_vars(GradLabel("rho", "positions", row, "key", label="l")) == {"g"}
    assert free_vars(UnitVector(alpha)) == {"·α"}
    # a sum over the rows of a gradient binds its row; its condition and body read the rest
    summed = ir.Reduce((ir.Binder("g", GradRows("rho", "positions")),), value,
                       ir.Binary("eq", GradLabel("rho", "positions", row, "sample", slot=0), V("i")))
    assert free_vars(summed) == {"·α", "m", "n", "i"}
    # a binder's domain reads outer variables and earlier binders: only the outer ones are free
    irreps = ir.Reduce((ir.Binder("l", ir.RangeDomain("angular", 0, 3)), ir.Binder("m", ir.IrrepDomain(V("l"), 2)),
                        ir.Binder("p", ir.PairsFrom("P", V("i")))), V("m"))
    assert free_vars(irreps) == {"i"}
    assert domain_vars(ir.IrrepDomain(V("k"), 2)) == {"k"} and domain_vars(GradRows("rho", "positions")) == set()
    assert free_vars(None) == frozenset()
    assert children(value) == (row, alpha, V("m"), V("n"))
    with pytest.raises(TypeError, match="unknown IR node Reduce"):
        children(summed)  # a sum's binders scope its children: walkers treat it themselves


def test_the_terms_of_a_gradient_hold_derivative_nodes_and_the_walkers_read_them():
    module = modules.power_spectrum(n_radial=2, max_angular=1)
    gradient = differentiate(module, "positions", outputs=["ps"])["ps"]
    found = {type(derivative_node(term.coefficient)) for term in gradient.terms}
    assert found <= set(DERIVATIVE_NODES) and GradValue in found
    for term in gradient.terms:
        binders = {b.name for b in term.binders}
        # what a term's coefficient reads: its binders, the kernel's indices, the direction, its aliases
        allowed = binders | {b.name for b in module.kernel("ps").indices} | {"·α"} | {n for n, _ in term.aliases}
        assert free_vars(term.coefficient) <= allowed
    assert all(derivative_node(k) is None for k in module.kernels)  # lowered IR is plain


@pytest.mark.parametrize("node", [
    GradLabel("rho", "positions", V("i"), "target"),
    GradValue("rho", "positions", V("i"), (ir.Const(0),), (ir.Slot("value", V("m")),), (ir.Slot("value", V("n1")),)),
])
def test_the_planner_and_the_verifier_refuse_a_derivative_node(node):
    module = modules.power_spectrum(n_radial=2, max_angular=1)
    kernel = module.kernel("ps")
    # inside a call's argument, where no type rule of the plan looks
    broken = dataclasses.replace(kernel, body=ir.Binary("mul", kernel.body, ir.Call("exp", (node,))))
    plan_kernel(kernel)
    with pytest.raises(Unsupported, match="derivative node"):
        plan_kernel(broken)
    module = dataclasses.replace(module, kernels=module.kernels[:-1] + (broken,))
    message = f"{type(node).__name__} is no expression of the IR: a node of the derivative IR"
    with pytest.raises(VerifyError, match=message):
        verify(module, "lowered")
