"""`model.to_jax(output)`: values equal the model's, `jax.grad` equals the gradient blocks and
finite differences, params gradients equal `to_torch()`'s, and jit / vmap work."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mtdsl
from mtdsl.runtime.bridges.jax_function import JaxFunctionError
from tests.torch._helpers import EXAMPLES, HYPERS, atoms, compiled, features


@pytest.fixture(autouse=True)
def float64():
    """64-bit JAX for these tests only (the user's setting is never changed by mtdsl)."""
    with jax.enable_x64(True):
        yield


def arguments(frame) -> dict:
    return dict(types=frame.numbers, cell=jnp.asarray(frame.cell.array), pbc=frame.pbc)


def gradient_rows(block, n_atoms: int, column=0) -> np.ndarray:
    """A positions gradient block of one system as [n_atoms, 3] (of column `column`)."""
    result = np.zeros((n_atoms, 3))
    for (sample, system, atom), values in zip(block.samples.array, block.values[..., column]):
        result[atom] += values
    return result


@pytest.mark.parametrize("frame", [0, 1], ids=["water", "crystal"])
def test_jit_grad_of_the_energy_is_its_gradient_blocks_and_finite_differences(frame):
    model = compiled("soap_energy")
    atoms_ = atoms()[frame]
    f = model.to_jax("energy")
    kwargs = arguments(atoms_)
    positions = jnp.asarray(atoms_.positions)
    expected = model([atoms_], gradients=["positions"])["energy"].block()
    np.testing.assert_allclose(np.asarray(f(positions, **kwargs)), expected.values, rtol=1e-14)

    energy = jax.jit(lambda r: f(r, **kwargs).sum())
    grad = np.asarray(jax.jit(jax.grad(lambda r: f(r, **kwargs).sum()))(positions))
    reference = gradient_rows(expected.gradient("positions"), len(atoms_))
    scale = np.abs(reference).max()
    assert scale > 0
    np.testing.assert_allclose(grad, reference, rtol=1e-9, atol=1e-9 * scale)

    h = 1e-5
    for atom, xyz in [(0, 0), (1, 2), (len(atoms_) - 1, 1)]:
        shift = np.zeros_like(atoms_.positions)
        shift[atom, xyz] = h
        difference = (float(energy(positions + shift)) - float(energy(positions - shift))) / (2 * h)
        assert difference == pytest.approx(grad[atom, xyz], rel=1e-6, abs=1e-8 * scale)


def test_two_calls_in_one_jitted_function():
    """Independent calls at other positions (and types) in one jitted gradient: each backward
    uses its own inputs, whatever order XLA runs the callbacks in."""
    model = compiled("soap_energy")
    water, crystal = atoms()
    f = model.to_jax("energy")
    moved = water.positions + 0.05

    def total(r, s, c):
        return f(r, types=water.numbers).sum() + 2 * f(r + 0.05, types=water.numbers).sum() \
            + f(s, types=crystal.numbers, cell=c, pbc=True).sum()
    grads = jax.jit(jax.grad(total, argnums=(0, 1)))(jnp.asarray(water.positions), jnp.asarray(crystal.positions),
                                                     jnp.asarray(crystal.cell.array))
    water_moved = water.copy()
    water_moved.positions = moved
    reference = model([water, water_moved, crystal], gradients=["positions"])["energy"].block().gradient("positions")
    rows = {s: np.zeros((len([water, water_moved, crystal][s]), 3)) for s in range(3)}
    for (sample, system, atom), values in zip(reference.samples.array, reference.values[:, :, 0]):
        rows[system][atom] += values
    np.testing.assert_allclose(np.asarray(grads[0]), rows[0] + 2 * rows[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grads[1]), rows[2], rtol=1e-9, atol=1e-12)


def test_cell_gradient_is_finite_differences():
    model = compiled("soap_energy")
    crystal = atoms()[1]
    f = model.to_jax("energy")
    positions, cell = jnp.asarray(crystal.positions), jnp.asarray(crystal.cell.array)
    energy = lambda c: f(positions, types=crystal.numbers, cell=c, pbc=True).sum()  # noqa: E731
    grad = np.asarray(jax.grad(energy)(cell))
    assert np.abs(grad).max() > 0
    h = 1e-5
    for a, x in [(0, 0), (1, 2), (2, 1)]:
        shift = np.zeros((3, 3))
        shift[a, x] = h
        difference = (float(energy(cell + shift)) - float(energy(cell - shift))) / (2 * h)
        assert difference == pytest.approx(grad[a, x], rel=1e-6, abs=1e-10)


def test_params_gradients_are_to_torchs():
    model = compiled("soap_energy")
    atoms_ = atoms()[1]
    f = model.to_jax("energy")
    params = {name: jnp.asarray(value) for name, value in model.parameters.items()}
    grads = jax.jit(jax.grad(lambda p: f(jnp.asarray(atoms_.positions), params=p, **arguments(atoms_)).sum()))(params)
    module = model.to_torch()
    system = mtdsl.System.from_ase(atoms_).to_torch()
    module([system])["energy"].block().values.sum().backward()
    for name in params:
        theirs = getattr(module, name).grad.numpy()
        assert np.abs(theirs).max() > 0
        np.testing.assert_allclose(np.asarray(grads[name]), theirs, rtol=1e-12, atol=1e-14)


def test_vmap_over_four_systems_of_the_same_size():
    model = compiled("soap_energy")
    crystals = []
    for seed in range(4):
        crystal = atoms()[1]
        crystal.rattle(0.05, seed=seed)
        crystals.append(crystal)
    f = model.to_jax("energy")
    kwargs = arguments(crystals[0])
    positions = jnp.stack([jnp.asarray(c.positions) for c in crystals])
    energies = jax.jit(jax.vmap(lambda r: f(r, **kwargs)[0, 0]))(positions)
    grads = jax.vmap(jax.grad(lambda r: f(r, **kwargs)[0, 0]))(positions)
    expected = model(crystals, gradients=["positions"])["energy"].block()
    np.testing.assert_allclose(np.asarray(energies), expected.values[:, 0], rtol=1e-14)
    gradient = expected.gradient("positions")
    for system in range(4):
        rows = gradient.samples.array[:, 1] == system
        reference = np.zeros((len(crystals[0]), 3))
        reference[gradient.samples.array[rows, 2]] = gradient.values[rows, :, 0]
        np.testing.assert_allclose(np.asarray(grads[system]), reference, rtol=1e-9, atol=1e-12)


def test_vmap_one_batch_per_atom_outputs_params_and_nesting():
    """vmap of a per-atom output of several blocks (the systems run as one batch), of params (one
    by one), and nested vmaps, against calls on each system."""
    water = atoms()[0]
    rng = np.random.default_rng(2)
    positions = jnp.asarray(water.positions + 0.05 * rng.normal(size=(2, 2, 3, 3)))
    ps = compiled("soap_power_spectrum").to_jax("ps")
    found = jax.vmap(jax.vmap(lambda r: ps(r, types=water.numbers)))(positions)
    for i in range(2):
        for j in range(2):
            expected = ps(positions[i, j], types=water.numbers)
            for ours, theirs in zip(found, expected):
                np.testing.assert_allclose(np.asarray(ours[i, j]), np.asarray(theirs), rtol=1e-14)
    grads = jax.vmap(jax.grad(lambda r: sum(b.sum() for b in ps(r, types=water.numbers))))(positions[0])
    for j in range(2):
        expected = jax.grad(lambda r: sum(b.sum() for b in ps(r, types=water.numbers)))(positions[0, j])
        np.testing.assert_allclose(np.asarray(grads[j]), np.asarray(expected), rtol=1e-12, atol=1e-14)

    model = compiled("soap_energy")
    f = model.to_jax("energy")
    stacked = {name: jnp.stack([jnp.asarray(value), 2 * jnp.asarray(value)]) for name, value in model.parameters.items()}
    r = jnp.asarray(water.positions)
    energies = jax.vmap(lambda p: f(r, types=water.numbers, params=p)[0, 0])(stacked)
    param_grads = jax.vmap(jax.grad(lambda p: f(r, types=water.numbers, params=p)[0, 0]))(stacked)
    for k in range(2):
        params = {name: value[k] for name, value in stacked.items()}
        assert float(energies[k]) == pytest.approx(float(f(r, types=water.numbers, params=params)[0, 0]), rel=1e-14)
        expected = jax.grad(lambda p: f(r, types=water.numbers, params=p)[0, 0])(params)
        for name in params:
            np.testing.assert_allclose(np.asarray(param_grads[name][k]), np.asarray(expected[name]), rtol=1e-12)


def test_several_blocks_fill_the_layout_of_the_types():
    """A per-atom output of several blocks: a tuple in key order, blocks and samples the geometry
    lacks (atoms far apart: no neighbour) are zeros; grad through one block is finite differences."""
    model = compiled("soap_power_spectrum")
    water = atoms()[0]
    f = model.to_jax("ps")
    template = f.template(types=water.numbers)
    found = f(jnp.asarray(water.positions), types=water.numbers)
    assert isinstance(found, tuple) and len(found) == len(template)
    expected = model([water])["ps"]
    for index, block in enumerate(template.blocks()):
        values = np.asarray(found[index])
        assert values.shape == tuple(block.values.shape)
        key = {n: int(v) for n, v in zip(template.keys.names, template.keys.array[index])}
        matching = expected.blocks_matching(**key)
        if matching:
            theirs = expected.block(matching[0])
            rows = block.samples.positions(theirs.samples.array)
            np.testing.assert_allclose(values[rows], theirs.values, rtol=1e-14)
    apart = water.copy()
    apart.positions[2] += [0, 0, 30.0]  # the second hydrogen has no neighbour: its blocks vanish
    far = f(jnp.asarray(apart.positions), types=water.numbers)
    assert sum(float(np.abs(np.asarray(b)).sum()) for b in far) < sum(float(np.abs(np.asarray(b)).sum()) for b in found)

    def first_block(r):
        return f(r, types=water.numbers)[0].sum()
    grad = np.asarray(jax.grad(first_block)(jnp.asarray(water.positions)))
    h = 1e-5
    shift = np.zeros((3, 3))
    shift[1, 0] = h
    difference = (float(first_block(jnp.asarray(water.positions + shift)))
                  - float(first_block(jnp.asarray(water.positions - shift)))) / (2 * h)
    assert difference == pytest.approx(grad[1, 0], rel=1e-6, abs=1e-9)


def test_input_tensormap_gradients_are_to_torchs():
    model = compiled("equivariant_convolution")
    water = atoms()[0]
    inputs = features("equivariant_convolution")
    h = inputs["h"]
    # one system: the water molecule's rows of the features
    rows = h.block(0).samples.array[:, 0] == 0
    from mtdsl import Labels, TensorBlock, TensorMap

    blocks = [TensorBlock(b.values.detach()[torch.from_numpy(rows)].numpy(),
                          Labels(b.samples.names, b.samples.array[rows]), b.components, b.properties)
              for b in h.blocks()]
    h = TensorMap(h.keys, blocks)
    f = model.to_jax("msg")
    with_values = lambda values: TensorMap(h.keys, [TensorBlock(v, b.samples, b.components, b.properties)  # noqa
                                                    for v, b in zip(values, h.blocks())])
    values = [jnp.asarray(b.values) for b in h.blocks()]

    def total(values):
        out = f(jnp.asarray(water.positions), types=water.numbers, h=with_values(values))
        return sum(jnp.sum(o ** 2) for o in (out if isinstance(out, tuple) else (out,)))
    grads = jax.grad(total)(values)
    module = model.to_torch()
    torch_values = [torch.tensor(np.asarray(v), requires_grad=True) for v in values]
    out = module([mtdsl.System.from_ase(water).to_torch()], h=with_values(torch_values))["msg"]
    sum((b.values ** 2).sum() for b in out.blocks()).backward()
    for ours, theirs in zip(grads, torch_values):
        assert theirs.grad.abs().max() > 0
        np.testing.assert_allclose(np.asarray(ours), theirs.grad.numpy(), rtol=1e-11, atol=1e-13)


def test_interpreter_backend_grad_through_the_torch_fallback():
    model = mtdsl.compile(EXAMPLES / "soap_energy.mt", **HYPERS["soap_energy"])
    model.parameters = dict(compiled("soap_energy").parameters)
    water = atoms()[0]
    f = model.to_jax("energy")
    grad = np.asarray(jax.grad(lambda r: f(r, types=water.numbers).sum())(jnp.asarray(water.positions)))
    expected = model([water], gradients=["positions"])["energy"].block().gradient("positions")
    np.testing.assert_allclose(grad, gradient_rows(expected, 3), rtol=1e-9, atol=1e-12)


def test_errors_say_what_to_do():
    model = compiled("soap_energy")
    water = atoms()[0]
    f = model.to_jax()
    with pytest.raises(JaxFunctionError, match="types must be a concrete array"):
        jax.jit(lambda r, t: f(r, types=t))(jnp.asarray(water.positions), jnp.asarray(water.numbers))
    with pytest.raises(JaxFunctionError, match="unknown output 'forces'"):
        model.to_jax("forces")
    with pytest.raises(JaxFunctionError, match=r"missing \['w'\]"):
        f(jnp.asarray(water.positions), types=water.numbers, params={"e0": model.parameters["e0"]})
    with pytest.raises(JaxFunctionError, match="got 2 types for 3 atoms"):
        f(jnp.asarray(water.positions), types=[1, 8])
