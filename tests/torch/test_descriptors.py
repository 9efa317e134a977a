"""The descriptors of a torch module (runtime/torch/descriptors.py, runtime/torch/descriptor_functions.py).

Which tensors are descriptors; their products (VJP, JVP) from the gradient blocks against
torch autograd through the IR; the module computing its VJPs with them equals the module
computing everything with torch (the interpreter's module); second derivatives w.r.t.
positions only when the backward asks for them.
"""

import gc

import numpy as np
import pytest
import torch

import mtdsl
from mtdsl.runtime.torch import descriptor_functions
from mtdsl.runtime.evaluate import torch_values
from mtdsl.runtime.torch.descriptors import BlockRun, Descriptors, NativeRun, descriptor_names
from mtdsl.systems import System
from mtdsl.systems.batch import SystemBatch
from mtdsl.systems.neighbors import neighbors

from ._helpers import EXAMPLES, HYPERS, atoms, compiled, systems

THRESHOLD_PROGRAM = """
model threshold
hyper cutoff = 3.5
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index s : systems(S)
param c ~ normal(0.0, 1.0)

tensor close
    samples (i)
  = sum(p in P.from(i) where P.distance[p] < 2.0) P.distance[p]

tensor smooth
    samples (i)
  = sum(p in P.from(i)) cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor e
    samples (s)
  = sum(i in atoms(S) where S.system[i] == s) c * (close[i] + smooth[i])

output e
"""


def test_descriptor_names():
    assert descriptor_names(compiled("spherical_expansion").module) == {"rho": ("positions", "cell")}
    assert descriptor_names(compiled("soap_power_spectrum").module) == {"ps": ("positions", "cell")}
    assert descriptor_names(compiled("soap_energy").module) == {"ps": ("positions", "cell")}
    assert descriptor_names(compiled("equivariant_convolution").module) == {}  # reads the input h


def test_a_where_on_distances_is_differentiable_so_both_tensors_are_descriptors(tmp_path):
    # conditions are piecewise constant (branchwise derivatives, docs/language.md): `close`,
    # a sum restricted by a distance threshold, has derivatives as `smooth` has
    path = tmp_path / "threshold.mt"
    path.write_text(THRESHOLD_PROGRAM)
    model = mtdsl.compile(path)
    assert descriptor_names(model.module) == {"close": ("positions", "cell"), "smooth": ("positions", "cell")}
    assert Descriptors(model).skipped(model.module) == set()


def test_the_tensors_only_descriptors_read_are_skipped():
    model = compiled("soap_energy")
    assert Descriptors(model).skipped(model.module) == {"rho"}


def run_and_torch_values(model, products="native"):
    descriptors = Descriptors(model)
    if products == "blocks":  # no native products: the gradient blocks' contractions
        descriptors._native[("positions", "cell")] = None
    batch = SystemBatch([System(f.numbers, f.positions, f.cell.array, f.pbc) for f in atoms()])
    pairs = {p.name: neighbors(batch, p.cutoff, full=p.full) for p in descriptors.module.pairs}
    run = descriptors.run(batch, pairs)
    positions = torch.tensor(np.asarray(batch.positions), requires_grad=True)
    cell = torch.tensor(np.asarray(batch.cell), requires_grad=True)
    tensors = torch_values.evaluate(descriptors.module, batch, pairs, positions, cell, {}, {})
    values = [tensors[name].block(index).values for name, index in run.blocks]
    return run, values, positions, cell


@pytest.mark.parametrize("products", ["native", "blocks"])
@pytest.mark.parametrize("backend", ["cpp", "llvm"])
@pytest.mark.parametrize("program", ["spherical_expansion", "soap_power_spectrum"])
def test_products_equal_torch_autograd(program, backend, products):
    run, values, positions, cell = run_and_torch_values(compiled(program, backend), products)
    assert isinstance(run, NativeRun if products == "native" else BlockRun)
    for found, expected in zip(run.values(torch.float64), values):
        torch.testing.assert_close(found, expected.detach(), rtol=0, atol=1e-12)
    generator = torch.Generator().manual_seed(1)
    cotangents = [torch.randn(v.shape, dtype=torch.float64, generator=generator) for v in values]
    expected = torch.autograd.grad(values, [positions, cell], cotangents)
    found = run.vjp(cotangents, positions.detach(), cell.detach())
    for a, b in zip(found, expected):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10 * float(b.abs().max()))
    # the JVP is the VJP's transpose: <C, J t> == <J^T C, t>
    positions_dot = torch.randn(positions.shape, dtype=torch.float64, generator=generator)
    cell_dot = torch.randn(cell.shape, dtype=torch.float64, generator=generator)
    tangents = run.jvp(positions_dot, cell_dot)
    left = sum(float((c * t).sum()) for c, t in zip(cotangents, tangents))
    right = float((found[0] * positions_dot).sum() + (found[1] * cell_dot).sum())
    assert left == pytest.approx(right, rel=1e-10)


def energy_forces_loss(module, batch):
    energy = module(batch)["energy"].block().values
    positions = [s.positions for s in batch]
    forces = torch.autograd.grad(energy.sum(), positions, create_graph=True)
    return energy, forces, energy.sum() + sum((f * f).sum() for f in forces)


def reference_module():
    """The energy model whose VJPs run every kernel with torch (the interpreter's module)."""
    model = mtdsl.compile(EXAMPLES / "soap_energy.mt", backend="interpreter", **HYPERS["soap_energy"])
    model.parameters = dict(compiled("soap_energy").parameters)
    return model.to_torch()


def test_the_module_uses_the_descriptors_and_equals_torch_everywhere(monkeypatch):
    calls = []
    forward = descriptor_functions.DescriptorValues.forward
    monkeypatch.setattr(descriptor_functions.DescriptorValues, "forward",
                        staticmethod(lambda *args: calls.append(1) or forward(*args)))
    module, reference = compiled("soap_energy").to_torch(), reference_module()
    batch, reference_batch = systems(requires_grad=True), systems(requires_grad=True)
    energy, forces, loss = energy_forces_loss(module, batch)
    expected_energy, expected_forces, expected_loss = energy_forces_loss(reference, reference_batch)
    assert calls
    torch.testing.assert_close(energy, expected_energy, rtol=1e-12, atol=1e-12)
    for a, b in zip(forces, expected_forces):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    loss.backward()
    expected_loss.backward()
    torch.testing.assert_close(module.w.grad, reference.w.grad, rtol=1e-10, atol=1e-12)
    for a, b in zip(batch, reference_batch):  # second derivatives w.r.t. positions and cells
        torch.testing.assert_close(a.positions.grad, b.positions.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(a.cell.grad, b.cell.grad, rtol=1e-10, atol=1e-12)


def test_second_derivatives_only_when_the_backward_asks(monkeypatch):
    calls = []
    hessian = descriptor_functions.DescriptorState.hessian_products
    monkeypatch.setattr(descriptor_functions.DescriptorState, "hessian_products",
                        lambda self, *args: calls.append(1) or hessian(self, *args))
    module = compiled("soap_energy").to_torch()
    parameters = list(module.parameters())
    _, _, loss = energy_forces_loss(module, systems(requires_grad=True))
    loss.backward(inputs=parameters)
    assert not calls
    restricted = [p.grad.clone() for p in parameters]
    module.zero_grad()
    batch = systems(requires_grad=True)
    _, _, loss = energy_forces_loss(module, batch)
    loss.backward()
    assert calls
    assert batch[1].positions.grad.abs().max() > 0
    for a, p in zip(restricted, parameters):
        torch.testing.assert_close(a, p.grad, rtol=1e-12, atol=0)


def test_the_products_buffers_are_released_with_the_call():
    module = compiled("soap_energy").to_torch()
    batch = systems(requires_grad=True)
    energy = module(batch)["energy"].block().values.sum()
    forces = torch.autograd.grad(energy, [s.positions for s in batch], create_graph=True)
    products = module._mtdsl.descriptors().native(("positions",))
    assert products is not None and products._state is not None  # order 2 may still need them
    del energy, forces
    gc.collect()
    assert products._state is None
