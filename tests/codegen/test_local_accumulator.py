"""The local accumulator of `accumulate` kernels (codegen/schedule/plan.py: `local_accumulator`): where it is
used and that it renders in both backends. The values are checked against the interpreter by
tests/codegen/test_native_gradients.py and the random programs."""

import pathlib

import pytest

import mtdsl
from mtdsl.codegen.schedule import plan as planning
from mtdsl.codegen.schedule.derived import extended_module

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def power_spectrum_gradient_kernels():
    model = mtdsl.compile(EXAMPLES / "soap_power_spectrum.mt", n_radial=3, max_angular=2)
    extended, terms = extended_module(model.module, {"positions": model.gradient_kernels["positions"]})
    return {k.name: k for k in extended.kernels}, terms


def test_power_spectrum_gradient_sums_m_locally():
    kernels, terms = power_spectrum_gradient_kernels()
    for k in (0, 1):
        plan = planning.plan_kernel(kernels[terms["scatters"][("ps", "positions", k)].name])
        assert plan.schedule == "accumulate" and plan.local is not None
        local = plan.loops[plan.local:]
        assert not local[0].is_index and local[0].var == "m"  # the sum over m, inside the row's loops
        assert {loop.var for loop in local if loop.is_index} == {"n1", "n2", "·α"}


def test_no_local_accumulator_without_an_inner_sum():
    kernels, _ = power_spectrum_gradient_kernels()
    rho = planning.plan_kernel(kernels["rho"])  # the sum over pairs is outside the (l, m, n) indices
    assert rho.local is None


@pytest.mark.parametrize("emit", ["cpp", "llvm"])
def test_rendered(emit):
    from mtdsl.codegen import render

    model = mtdsl.compile(EXAMPLES / "soap_power_spectrum.mt", n_radial=3, max_angular=2)
    extended, _ = extended_module(model.module, {"positions": model.gradient_kernels["positions"]})
    text = render(extended, emit)
    if emit == "cpp":
        assert "added into the buffer once" in text
    else:
        from mtdsl.codegen.llvm import optimize
        from mtdsl.codegen.schedule import nest
        from mtdsl.codegen.schedule.kernel import ModuleLowering

        def statements(body):
            for statement in body:
                yield statement
                yield from statements(getattr(statement, "body", ()))

        # the local accumulators of the nest (zeroed arrays the sums go to) are stack arrays of the IR
        kernels, _ = ModuleLowering(extended).lower()
        names = {s.name for k in kernels.values() for s in statements(k.nest.body) if isinstance(s, nest.Alloc) and s.zero}
        assert names and all(f'%"{name}" = alloca' in text or f"%{name} = alloca" in text for name in names)
        optimize(text)
