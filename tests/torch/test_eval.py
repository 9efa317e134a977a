"""`runtime/evaluate/` on torch values: the IR evaluated with torch tensors equals the backends, built-in by built-in."""

import numpy as np
import pytest
import torch

from mtdsl.math.functions import cosine_cutoff
from mtdsl.math.radial import soap_radial_spline
from mtdsl.math.sph import spherical_harmonics
from mtdsl.runtime.evaluate import builtins as torch_builtins

from ._helpers import PROGRAMS, compiled, features, systems


@pytest.mark.parametrize("convention", ["metatensor", "e3nn"])
def test_spherical_harmonics_equal_numpy(convention):
    vectors = np.random.default_rng(0).normal(size=(20, 3))
    vectors[0] = 0.0
    expected = spherical_harmonics(vectors, 4, convention=convention)
    found = torch_builtins.spherical_harmonics(torch.tensor(vectors), 4, convention)
    np.testing.assert_allclose(found.numpy(), expected, rtol=1e-13, atol=1e-14)


def test_spherical_harmonics_gradients_equal_numpy():
    vectors = np.random.default_rng(1).normal(size=(7, 3))
    vectors[0] = 0.0  # zero gradients there, as in mtdsl.math.sph
    vectors = torch.tensor(vectors, requires_grad=True)
    _, expected = spherical_harmonics(vectors.detach().numpy(), 3, gradients=True)
    table = torch_builtins.spherical_harmonics(vectors, 3)
    for column in range(table.shape[1]):
        gradient, = torch.autograd.grad(table[:, column].sum(), vectors, retain_graph=True)
        np.testing.assert_allclose(gradient.numpy(), expected[:, :, column], rtol=1e-10, atol=1e-12)


def test_radial_spline_and_cutoff_equal_numpy():
    spline = soap_radial_spline(3, 4, 3.5, 0.3)
    r = np.linspace(0.0, 3.5, 41)
    values, derivatives = spline.evaluate(r, derivative=True)
    distances = torch.tensor(r, requires_grad=True)
    found = torch_builtins.radial_spline(spline, distances)
    np.testing.assert_allclose(found.detach().numpy(), values, rtol=1e-13, atol=1e-14)
    gradient, = torch.autograd.grad(found.sum(), distances)
    np.testing.assert_allclose(gradient.numpy(), derivatives.sum(axis=(1, 2)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(torch_builtins.cosine_cutoff(torch.tensor(r), 3.5, 0.5).numpy(),
                               cosine_cutoff(r, 3.5, 0.5), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("backend", ["cpp", "interpreter"])
def test_torch_values_equal_the_backend(program, backend):
    module = compiled(program, backend).to_torch()
    tensormaps = features(program)
    batch = systems()
    plan, _ = module._prepare(batch, [], tensormaps)
    primals = [torch.cat([s.positions for s in batch]), torch.stack([s.cell for s in batch]),
               *(p.detach() for p in module.parameters()),
               *(b.values for t in tensormaps.values() for b in t.blocks())]
    expected = plan.values(plan.structure, primals)
    found = plan.torch_values(plan.structure, primals)
    assert [tuple(x.shape) for x in found] == [tuple(x.shape) for x in expected]
    for a, b in zip(found, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_param_reads_by_dimension_equal_the_point_by_point_gather():
    from mtdsl.runtime.named import Named
    from mtdsl.runtime.evaluate.dispatch import gather_by_dimension as _gather_by_dimension

    values = torch.arange(4 * 3 * 5, dtype=torch.float64).reshape(4, 3, 5).requires_grad_(True)
    types = Named(("i",), np.array([2, 0, 2, 3, 1]))  # a dimension read through another axis
    in_order = Named(("b",), np.arange(3))              # a dimension read in order
    constant = Named((), np.array(4))                    # a fixed position
    found = _gather_by_dimension(values, [types, in_order, constant])
    assert found.axes == ("i", "b")
    expected = values[torch.tensor([2, 0, 2, 3, 1])[:, None], torch.arange(3)[None, :], 4]
    torch.testing.assert_close(found.data, expected)
    grad, = torch.autograd.grad(found.data.sum(), values)
    torch.testing.assert_close(grad, torch.autograd.grad(expected.sum(), values)[0])
    # two dimensions on one axis (a diagonal) or a missing position: gathered point by point
    assert _gather_by_dimension(values[:3, :3, 0], [in_order, in_order]) is None
    missing = Named(("b",), np.arange(3), Named(("b",), np.array([False, True, False])))
    assert _gather_by_dimension(values, [types, missing, constant]) is None
