"""`Model.to_torch()`: autograd through the compiled kernels (runtime/torch/module.py, docs/torch.md).

gradcheck (float64) of every reference program with respect to positions, cells,
parameters and the convolution's input tensormap; double backward (forces in a
loss reach the parameters; gradgradcheck of the energy); the energy model's
gradient blocks against autograd forces and virial; torch.compile against eager;
opcheck of the custom ops; the state_dict round trip; errors.
"""

import copy
import gc

import numpy as np
import pytest
import torch

import mtdsl
from mtdsl.runtime.torch import module as torch_module
from mtdsl.runtime.torch.module import TorchModelError, encode_shapes, evaluate_op, gradient_blocks_op
from mtdsl.tensor import TensorBlock, TensorMap

from ._helpers import EXAMPLES, HYPERS, PROGRAMS, atoms, compiled, features, flat_values, systems


def differentiable_call(program):
    """The module's outputs (flattened) as a function of positions, cells, parameters and `h`'s values,
    with the inputs gradcheck perturbs."""
    module = compiled(program).to_torch()
    names = [name for name, _ in module.named_parameters()]
    tensormaps = features(program)
    reference = [b for t in tensormaps.values() for b in t.blocks()]
    frames = atoms()
    molecule_cell = torch.tensor(frames[0].cell.array)

    def function(positions_0, positions_1, cell_1, *rest):
        params = dict(zip(names, rest[:len(names)]))
        values = iter(rest[len(names):])
        inputs = {name: TensorMap(t.keys, [TensorBlock(next(values), b.samples, b.components, b.properties)
                                          for b in t.blocks()]) for name, t in tensormaps.items()}
        batch = systems(positions=[positions_0, positions_1], cells=[molecule_cell, cell_1])
        return flat_values(torch.func.functional_call(module, params, (batch,), inputs))

    inputs = [torch.tensor(frames[0].positions), torch.tensor(frames[1].positions), torch.tensor(frames[1].cell.array)]
    inputs += [p.detach().clone() for p in module.parameters()]
    inputs += [b.values.detach().clone() for b in reference]
    return function, [x.requires_grad_(True) for x in inputs]


@pytest.mark.parametrize("program", PROGRAMS)
def test_gradcheck_positions_cell_parameters_and_inputs(program):
    function, inputs = differentiable_call(program)
    assert torch.autograd.gradcheck(function, inputs, fast_mode=True)


def test_gradcheck_positions_and_cell_entry_by_entry():
    function, inputs = differentiable_call("soap_power_spectrum")
    for x in inputs[3:]:
        x.requires_grad_(False)
    summed = lambda *args: (function(*args) * torch.linspace(-1.0, 1.0, function(*args).numel(),
                                                             dtype=torch.float64)).sum()
    assert torch.autograd.gradcheck(summed, inputs)


def test_gradgradcheck_energy():
    function, inputs = differentiable_call("soap_energy")
    assert torch.autograd.gradgradcheck(function, inputs, fast_mode=True)


def test_values_equal_the_model():
    for program in PROGRAMS:
        model = compiled(program)
        tensormaps = features(program)
        expected = model(systems(), **{n: t.to(arrays="numpy") for n, t in tensormaps.items()})
        found = model.to_torch()(systems(), **tensormaps)
        for name, tensor in expected.items():
            assert found[name].keys == tensor.keys
            for a, b in zip(tensor.blocks(), found[name].blocks()):
                assert a.samples == b.samples and a.properties == b.properties
                np.testing.assert_array_equal(np.asarray(a.values), b.values.detach().numpy())


def test_parameters_are_named_as_in_the_program_and_initialised_from_the_model():
    model = compiled("soap_energy")
    module = model.to_torch()
    assert [name for name, _ in module.named_parameters()] == ["w", "e0"]
    assert isinstance(module.w, torch.nn.Parameter)
    np.testing.assert_array_equal(module.w.detach().numpy(), model.parameters["w"])


def energy_and_forces(module, batch):
    energy = module(batch)["energy"].block().values
    positions = [s.positions for s in batch]
    forces = torch.autograd.grad(energy.sum(), positions, create_graph=True)
    return energy, [-f for f in forces]


def test_forces_in_a_loss_reach_the_parameters():
    """Mixed second derivatives positions x parameters, against finite differences of the loss."""
    module = compiled("soap_energy").to_torch()

    def loss_of(w):
        batch = systems(requires_grad=True)
        energy = torch.func.functional_call(module, {"w": w, "e0": module.e0}, (batch,))["energy"].block().values
        forces = torch.autograd.grad(energy.sum(), [s.positions for s in batch], create_graph=True)
        return sum((f * f).sum() for f in forces)

    w = module.w.detach().clone().requires_grad_(True)
    loss = loss_of(w)
    gradient, = torch.autograd.grad(loss, w)
    assert gradient.abs().max() > 0
    direction = torch.randn(w.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    h = 1e-6
    numerical = (loss_of(w.detach() + h * direction) - loss_of(w.detach() - h * direction)) / (2 * h)
    assert torch.allclose((gradient * direction).sum(), numerical.detach(), rtol=1e-6, atol=1e-8)

    # the colleague's training step: backward() into the module's parameters
    batch = systems(requires_grad=True)
    _, forces = energy_and_forces(module, batch)
    loss = sum((f * f).sum() for f in forces)
    loss.backward()
    torch.testing.assert_close(module.w.grad, gradient)
    assert module.e0.grad is not None and torch.all(module.e0.grad == 0)  # e0 does not move atoms


def test_gradient_blocks_equal_autograd_forces_and_virial():
    module = compiled("soap_energy").to_torch()
    batch = systems(requires_grad=True)
    block = module(batch, gradients=["positions", "strain"])["energy"].block()
    energy = block.values
    positions, cells = [s.positions for s in batch], [s.cell for s in batch]
    grads = torch.autograd.grad(energy.sum(), positions + cells)
    d_positions, d_cells = grads[:2], grads[2:]

    gradient = block.gradient("positions")
    assert gradient.samples.names == ["sample", "system", "atom"]
    dense = [torch.zeros_like(p) for p in positions]
    for (sample, system, atom), row in zip(gradient.samples.values.tolist(), gradient.values[..., 0]):
        assert sample == system  # one energy per system
        dense[system][atom] += row
    for found, expected in zip(dense, d_positions):
        torch.testing.assert_close(found, expected, rtol=1e-8, atol=1e-10)

    # strain: r -> r (1 + eps), H -> H (1 + eps): dE/deps_ab = sum_i r_ia dE/dr_ib + sum_k H_ka dE/dH_kb
    strain = block.gradient("strain")
    for sample, values in zip(strain.samples.values.tolist(), strain.values[..., 0]):
        system = sample[0]
        virial = positions[system].T @ d_positions[system] + cells[system].T @ d_cells[system]
        torch.testing.assert_close(values, virial, rtol=1e-8, atol=1e-10)


def test_backward_through_gradient_blocks_is_an_error():
    module = compiled("soap_energy").to_torch()
    block = module(systems(requires_grad=True), gradients=["positions"])["energy"].block()
    with pytest.raises(TorchModelError, match=r"gradient blocks \(module\(..., gradients=\[...\]\)\) are not "
                                              "differentiable: differentiate the output values"):
        block.gradient("positions").values.sum().backward()


@pytest.mark.parametrize("program, backend", [("soap_energy", "inductor"), ("equivariant_convolution", "aot_eager")])
def test_torch_compile_equals_eager(program, backend):
    torch._dynamo.reset()
    module = compiled(program).to_torch()
    tensormaps = features(program, requires_grad=True)

    def run(batch):
        return flat_values(module(batch, **tensormaps))

    compiled_run = torch.compile(run, backend=backend)
    eager_batch, compiled_batch = systems(requires_grad=True), systems(requires_grad=True)
    eager, found = run(eager_batch), compiled_run(compiled_batch)
    torch.testing.assert_close(found, eager, rtol=0, atol=0)
    weights = torch.linspace(-1, 1, eager.numel(), dtype=torch.float64)
    inputs = lambda batch: [s.positions for s in batch] + [s.cell for s in batch] + list(module.parameters())
    expected = torch.autograd.grad((eager * weights).sum(), inputs(eager_batch))
    gradients = torch.autograd.grad((found * weights).sum(), inputs(compiled_batch))
    for a, b in zip(gradients, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # a new call with the same shapes reuses the graphs
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled_run(systems(requires_grad=True))


def test_torch_compile_with_gradient_blocks_equals_eager():
    torch._dynamo.reset()
    module = compiled("soap_energy").to_torch()

    def run(batch):
        block = module(batch, gradients=["positions", "strain"])["energy"].block()
        return block.values, block.gradient("positions").values, block.gradient("strain").values

    eager_batch, compiled_batch = systems(requires_grad=True), systems(requires_grad=True)
    eager, found = run(eager_batch), torch.compile(run, backend="aot_eager")(compiled_batch)
    for a, b in zip(found, eager):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    expected = torch.autograd.grad(eager[0].sum(), [s.positions for s in eager_batch])
    gradients = torch.autograd.grad(found[0].sum(), [s.positions for s in compiled_batch])
    for a, b in zip(gradients, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def op_arguments(program):
    module = compiled(program).to_torch()
    tensormaps = features(program)
    batch = systems()
    plan, _ = module._prepare(batch, [], tensormaps)
    primals = [torch.cat([s.positions for s in batch]), torch.stack([s.cell for s in batch]),
               *(p.detach().clone() for p in module.parameters()),
               *(b.values.detach().clone() for t in tensormaps.values() for b in t.blocks())]
    return plan, [x.requires_grad_(True) for x in primals]


@pytest.mark.parametrize("program", ["soap_energy", "equivariant_convolution"])
def test_opcheck_evaluate(program):
    plan, primals = op_arguments(program)
    shapes = encode_shapes(plan.shapes)
    handle = plan.handle()
    torch.library.opcheck(evaluate_op, (handle, 0, [], len(plan.shapes), shapes, plan.structure, primals))
    # order 1: the vector-Jacobian product, with one cotangent per output block
    cotangents = [torch.randn(shape, dtype=torch.float64, requires_grad=True) for shape in plan.shapes]
    masks = [1] * len(primals)
    torch.library.opcheck(evaluate_op, (handle, 1, masks, len(plan.shapes), shapes, plan.structure,
                                            primals + cotangents))


def test_opcheck_gradient_blocks():
    module = compiled("soap_energy").to_torch()
    batch = systems()
    plan, handle = module._prepare(batch, ["positions"], {})
    primals = [torch.cat([s.positions for s in batch]), torch.stack([s.cell for s in batch]),
               *(p.detach().clone() for p in module.parameters())]
    arguments = (handle, encode_shapes(plan.gradient_shapes), plan.structure, primals)
    # (its backward is an error for non-zero cotangents: opcheck's autograd test with random ones does not apply)
    torch.library.opcheck(gradient_blocks_op, arguments, test_utils=(
        "test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_static"))


def test_state_dict_round_trip(tmp_path):
    model = compiled("soap_energy")
    module = model.to_torch()
    with torch.no_grad():
        module.w.mul_(2.0)
        module.e0.add_(1.0)
    expected = flat_values(module(systems()))
    torch.save(module.state_dict(), tmp_path / "energy.pt")
    restored = model.to_torch()
    assert not torch.equal(flat_values(restored(systems())), expected)
    restored.load_state_dict(torch.load(tmp_path / "energy.pt"))
    torch.testing.assert_close(flat_values(restored(systems())), expected, rtol=0, atol=0)


def test_torch_save_of_the_whole_module(tmp_path):
    """The module pickles without its native code, which is built again (from the cache) on load."""
    module = compiled("soap_energy").to_torch()
    with torch.no_grad():
        module.w.mul_(3.0)
    batch = systems(requires_grad=True)
    energy = module(batch)["energy"].block().values.sum()
    forces = torch.autograd.grad(energy, [s.positions for s in batch])
    torch.save(module, tmp_path / "module.pt")
    restored = torch.load(tmp_path / "module.pt", weights_only=False)
    assert restored.model is not module.model and restored.model._compiled is None
    batch = systems(requires_grad=True)
    restored_energy = restored(batch)["energy"].block().values.sum()
    restored_forces = torch.autograd.grad(restored_energy, [s.positions for s in batch])
    torch.testing.assert_close(restored_energy, energy, rtol=0, atol=0)
    for a, b in zip(restored_forces, forces):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(restored.w, module.w, rtol=0, atol=0)


def test_deepcopy_shares_the_compiled_model_and_copies_the_parameters():
    module = compiled("soap_energy").to_torch()
    copied = copy.deepcopy(module)
    assert copied.model is module.model
    with torch.no_grad():
        copied.e0.add_(1.0)
    assert torch.all(module.e0 != copied.e0)
    assert not torch.equal(flat_values(copied(systems())), flat_values(module(systems())))


def test_trained_parameters_are_used_and_the_model_is_untouched():
    model = compiled("soap_energy")
    before = model.parameters["e0"].copy()
    module = model.to_torch()
    energy = module(systems())["energy"].block().values
    with torch.no_grad():
        module.e0.add_(1.0)
    shifted = module(systems())["energy"].block().values
    n_atoms = torch.tensor([[len(frame)] for frame in atoms()], dtype=torch.float64)
    torch.testing.assert_close(shifted - energy, n_atoms)
    np.testing.assert_array_equal(model.parameters["e0"], before)


def test_plans_are_released_with_the_outputs_graph():
    module = compiled("soap_energy").to_torch()
    gc.collect()
    before = len(torch_module._PLANS)
    batch = systems(requires_grad=True)
    energy = module(batch)["energy"].block().values
    assert len(torch_module._PLANS) == before + 1
    forces = torch.autograd.grad(energy.sum(), [s.positions for s in batch], create_graph=True)
    del energy
    gc.collect()
    assert len(torch_module._PLANS) == before + 1  # the forces' graph still needs it
    del forces
    gc.collect()
    assert len(torch_module._PLANS) == before


def test_errors():
    module = compiled("soap_energy").to_torch()
    declared = r"declares gradients \['positions', 'strain'\]; cannot compute \['cell'\]"
    with pytest.raises(mtdsl.errors.MtdslError, match=declared):
        module(systems(), gradients=["cell"])
    with pytest.raises(TorchModelError, match="unknown input 'h'"):
        module(systems(), h=None)
    frame = atoms()[0]
    with pytest.raises(TorchModelError, match="torch positions and cell"):
        module([mtdsl.System(frame.numbers, frame.positions)])
    with pytest.raises(TorchModelError, match="the module computes in torch.float64"):
        module([mtdsl.System(torch.tensor(frame.numbers), torch.tensor(frame.positions, dtype=torch.float32))])
    convolution = compiled("equivariant_convolution").to_torch()
    with pytest.raises(TorchModelError, match="needs the tensormap input 'h'"):
        convolution(systems())
    with pytest.raises(TorchModelError, match="input h: block values must be torch tensors of torch.float64, "
                                              "got ndarray of float64"):
        convolution(systems(), h=features("equivariant_convolution")["h"].to(arrays="numpy"))


def test_gradcheck_energy_entry_by_entry():
    """Every entry of the positions, the cell and e0 (w, with hundreds of entries, in fast mode above)."""
    function, inputs = differentiable_call("soap_energy")
    inputs[3].requires_grad_(False)
    assert torch.autograd.gradcheck(function, inputs)


CLASH = """model clash

hyper cutoff = 3.0

input S : systems
pairs P = neighbors(S, cutoff = cutoff)

index i : atoms(S)
index k : range(2)
param forward[k] ~ ones

tensor t
    samples    (i)
    properties (k)
  = forward[k] * sum(p in P.from(i)) P.distance[p]

output t
"""


def test_a_param_named_like_a_module_attribute_is_an_error(tmp_path):
    path = tmp_path / "clash.mt"
    path.write_text(CLASH)
    model = mtdsl.compile(path, backend="interpreter")
    with pytest.raises(TorchModelError, match="param forward: the name is taken by the torch module"):
        model.to_torch()


def test_float32_follows_float64():
    model64 = compiled("equivariant_convolution")
    model32 = mtdsl.compile(EXAMPLES / "equivariant_convolution.mt", dtype=np.float32,
                            **HYPERS["equivariant_convolution"])
    model32.parameters = {name: value.astype(np.float32) for name, value in model64.parameters.items()}
    results = []
    for model, dtype in ((model64, torch.float64), (model32, torch.float32)):
        batch = systems(requires_grad=True)
        batch = [mtdsl.System(s.types, s.positions.to(dtype), s.cell.to(dtype), s.pbc) for s in batch]
        h = features("equivariant_convolution")["h"]
        h = TensorMap(h.keys, [TensorBlock(b.values.to(dtype), b.samples, b.components, b.properties)
                               for b in h.blocks()])
        module = model.to_torch()
        values = flat_values(module(batch, h=h))
        assert values.dtype == dtype
        gradient, = torch.autograd.grad(values.square().sum(), module.wr)
        results.append((values.double(), gradient.double()))
    (values64, gradient64), (values32, gradient32) = results
    torch.testing.assert_close(values32, values64, rtol=0, atol=1e-5 * values64.abs().max().item())
    torch.testing.assert_close(gradient32, gradient64, rtol=0, atol=1e-4 * gradient64.abs().max().item())
