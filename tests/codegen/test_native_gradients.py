"""Gradient blocks computed by the compiled backends (`mtdsl/ir/passes/terms.py`) against the interpreter's.

Every reference program (examples/) and every program of the gradient tests that
declares gradients, for positions, strain and cell, on a batch of a molecule, two
small crystals (one triclinic, two species), an isolated atom and a far-apart pair,
with the cpp and llvm backends: the same rows in the same order, the same
components and properties, values within 1e-12 of the largest gradient value
(float64) or 1e-5 (float32); and the terms ran natively (written straight into
the gradient rows where the plan allows, else filled natively and scattered).
"""

import ase
import numpy as np
import pytest

from mtdsl.compile import compile
from mtdsl.runtime.native.compiled import compile_module

from ..runtime.test_gradients import (
    BUILTINS_PROGRAM,
    DIPOLE_PROGRAM,
    EXAMPLES,
    MESSAGE_PASSING_PROGRAM,
    PAIRS_PROGRAM,
    features_for,
    small_batch,
    with_gradients,
    write,
)

BACKENDS = ["cpp", "llvm"]
ALL = ["positions", "strain", "cell"]


def systems():
    isolated = ase.Atoms("C", positions=[[0.0, 0.0, 0.0]])
    apart = ase.Atoms("OH", positions=[[0.0, 0.0, 0.0], [20.0, 0.0, 0.0]])
    return small_batch() + [isolated, apart]


def assert_same_gradients(expected: dict, ours: dict, gradients, tolerance):
    for name, tensor in expected.items():
        mine = ours[name]
        assert mine.keys == tensor.keys
        for parameter in gradients:
            scale = max((np.abs(b.gradient(parameter).values).max(initial=0.0) for b in tensor.blocks()), default=0.0)
            for key, block in tensor.items():
                reference, gradient = block.gradient(parameter), mine.block(key).gradient(parameter)
                assert gradient.samples == reference.samples, (name, parameter, key)
                assert gradient.components == reference.components, (name, parameter, key)
                assert gradient.properties == reference.properties, (name, parameter, key)
                np.testing.assert_allclose(gradient.values, reference.values, rtol=0, atol=tolerance * max(scale, 1e-300),
                                           err_msg=f"{name} {parameter} {key}")


def check(path, gradients, inputs=None, scatter=True, dtype=np.float64, **hypers):
    inputs = inputs or {}
    batch = systems()
    reference = compile(path, backend="interpreter", **hypers)
    for name in reference.parameters:  # random parameters, the same for every backend
        rng = np.random.default_rng(7)
        reference.parameters[name] = rng.normal(size=reference.parameters[name].shape)
    expected = reference(batch, gradients=gradients, **inputs)
    for backend in BACKENDS:
        model = compile(path, backend=backend, dtype=dtype, **hypers)
        model.parameters = dict(reference.parameters)
        ours = model(batch, gradients=gradients, **inputs)
        assert_same_gradients(expected, ours, gradients, 1e-12 if dtype == np.float64 else 1e-5)
        ran = model.compiled.last_gradient_terms
        n_terms = sum(len(g.terms) for wrt in gradients for g in model.gradient_kernels[wrt].values())
        assert len(ran) == n_terms, f"{backend}: {n_terms - len(ran)} terms ran in the interpreter"
        if scatter:
            # "fused": added in the values' pass over pairs (codegen/schedule/fuse.py)
            assert set(ran.values()) <= {"scatter", "fused"}, f"{backend}: {ran}"


def test_spherical_expansion(tmp_path):
    check(with_gradients(tmp_path, "spherical_expansion.mt"), ALL, max_angular=3, n_radial=4)


def test_power_spectrum(tmp_path):
    check(with_gradients(tmp_path, "soap_power_spectrum.mt"), ALL, max_angular=2, n_radial=3)


def test_energy_model(tmp_path):
    species = sorted({int(z) for atoms in systems() for z in atoms.numbers})
    # its energy sums over atoms into a constant property: filled natively, scattered in Python
    check(with_gradients(tmp_path, "soap_energy.mt"), ALL, scatter=False, species=species, max_angular=2, n_radial=3)


def test_convolution(tmp_path):
    h = features_for(systems(), width=4, seed=3)
    check(with_gradients(tmp_path, "equivariant_convolution.mt"), ALL, {"h": h}, width=4)


def test_e3nn_convention(tmp_path):
    path = with_gradients(tmp_path, "spherical_expansion.mt", "positions, strain")
    path.write_text(path.read_text().replace("model spherical_expansion\n",
                                             'model spherical_expansion\nconvention sph = "e3nn"\n'))
    check(path, ["positions", "strain"], max_angular=3, n_radial=3)


def test_float32(tmp_path):
    check(with_gradients(tmp_path, "soap_power_spectrum.mt"), ALL, dtype=np.float32, max_angular=2, n_radial=3)


@pytest.mark.parametrize("program, gradients", [
    (BUILTINS_PROGRAM, ALL),
    (PAIRS_PROGRAM, ALL),
    (MESSAGE_PASSING_PROGRAM, ["positions", "strain"]),
    (DIPOLE_PROGRAM, ALL),
])
def test_programs_of_the_gradient_tests(tmp_path, program, gradients):
    """Programs beyond the reference ones: every term the lowering does not support runs in the
    interpreter, the others natively; the result is the interpreter's either way."""
    path = write(tmp_path, program)
    batch = systems()
    expected = compile(path, backend="interpreter")(batch, gradients=gradients)
    for backend in BACKENDS:
        ours = compile(path, backend=backend)(batch, gradients=gradients)
        assert_same_gradients(expected, ours, gradients, 1e-12)


def test_the_interpreter_takes_over_a_term_whose_native_run_fails(tmp_path):
    """A scatter kernel that cannot run (here: it is made to fail) leaves the whole gradient to
    the interpreter (its tensor has no term kernels: every term had a scatter kernel)."""
    path = with_gradients(tmp_path, "spherical_expansion.mt", "positions")
    batch = systems()
    expected = compile(path, backend="interpreter", max_angular=2, n_radial=3)(batch, gradients=["positions"])
    model = compile(path, backend="cpp", max_angular=2, n_radial=3)
    compiled = model.compiled
    compiled.fuse = False  # the terms on their own (test_fused_pass.py: a fused run that fails)
    compiled.scatter_term = lambda *args, **kwargs: False
    ours = model(batch, gradients=["positions"])
    assert_same_gradients(expected, ours, ["positions"], 1e-12)
    assert compiled.last_gradient_terms == {}


def test_gradient_kernels_are_compiled_with_the_values():
    model = compile(EXAMPLES / "soap_power_spectrum.mt", backend="cpp")
    compiled = compile_module(model.module, backend="cpp", gradients=model.gradient_kernels)
    assert not compiled.fallbacks
    names = {s.name for s in compiled.scatters.values()}
    assert names and names == set(compiled.term_kernels)  # no term kernels: every term has a scatter kernel
    assert "mt_dsph4" in compiled.source and "mt_spline_derivative" in compiled.source
