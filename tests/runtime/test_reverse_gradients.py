"""Gradient blocks by reverse mode (runtime/model.py, docs/gradients.md "Gradient blocks by
reverse mode"): for outputs whose samples are per system, `model(frames, gradients=...)` on a
native backend takes one VJP per column; the blocks must equal forward mode's (same samples,
components, properties; values within 1e-10 of the largest)."""

import pickle

import ase
import ase.build
import numpy as np
import pytest

from mtdsl.compile import compile
from mtdsl.runtime.model import REVERSE_MIN_ATOMS, per_system

from .test_gradients import DIPOLE_PROGRAM, EXAMPLES, small_batch, write

BACKENDS = ["cpp", "llvm"]
SOAP_HYPERS = dict(cutoff=3.5, n_radial=2, max_angular=2, species=[1, 8, 11, 14, 17])

TWO_PROPERTIES = """
model two_properties
hyper cutoff = 3.5
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index s : systems(S)
index k : range(2)
param c[k] ~ normal(0.0, 1.0)
param b[k] ~ normal(1.0, 0.1)

tensor f
    samples (i)
    properties (k)
  = tanh(c[k] * sum(p in P.from(i)) exp(-b[k] ^ 2 * P.distance[p]) * cosine_cutoff(P.distance[p], cutoff, width = 0.5))

tensor e
    samples (s)
    properties (k)
  = sum(i in atoms(S) where S.system[i] == s) f[i, k] * f[i, k] * b[k] + c[k]

output e with gradients(positions, strain, cell)
"""

#: the sum runs over every atom of the batch: not per system (forward mode)
WHOLE_BATCH = TWO_PROPERTIES.replace("where S.system[i] == s", "")


def randomized(model, seed=7):
    rng = np.random.default_rng(seed)
    for name, value in model.parameters.items():
        model.parameters[name] = rng.normal(size=np.shape(value))
    return model


def assert_same_blocks(forward: dict, reverse: dict, gradients):
    for name, tensor in forward.items():
        mine = reverse[name]
        assert mine.keys == tensor.keys
        for key, block in tensor.items():
            np.testing.assert_array_equal(mine.block(key).values, block.values)
            for wrt in gradients:
                expected, found = block.gradient(wrt), mine.block(key).gradient(wrt)
                assert found.samples == expected.samples, (name, wrt)
                assert found.components == expected.components, (name, wrt)
                assert found.properties == expected.properties, (name, wrt)
                scale = max(np.abs(expected.values).max(initial=0.0), 1e-300)
                np.testing.assert_allclose(found.values, expected.values, rtol=0, atol=1e-10 * scale,
                                           err_msg=f"{name} {wrt}")


def frames():
    """A molecule, two crystals (one triclinic, two species), an isolated atom, a far-apart pair."""
    isolated = ase.Atoms("H", positions=[[0.0, 0.0, 0.0]])
    apart = ase.Atoms("OH", positions=[[0.0, 0.0, 0.0], [20.0, 0.0, 0.0]])
    return small_batch() + [isolated, apart]


def check(model, gradients, **tensormaps):
    frames_ = frames()
    model.reverse_gradients = "always"  # a small batch: below REVERSE_MIN_ATOMS
    reverse = model(frames_, gradients=gradients, **tensormaps)
    assert set(model.last_gradient_path.values()) == {"reverse"}, model.last_gradient_path
    model.reverse_gradients = False
    try:
        forward = model(frames_, gradients=gradients, **tensormaps)
    finally:
        model.reverse_gradients = True
    assert set(model.last_gradient_path.values()) == {"forward"}, model.last_gradient_path
    assert model.compiled.last_gradient_terms  # forward mode's kernels ran
    assert_same_blocks(forward, reverse, gradients)


@pytest.mark.parametrize("backend", BACKENDS)
def test_soap_energy(backend):
    model = randomized(compile(EXAMPLES / "soap_energy.mt", backend=backend, **SOAP_HYPERS))
    check(model, ["positions", "strain"])
    check(model, ["positions"])
    check(model, ["strain"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_properties_with_cell(tmp_path, backend):
    model = randomized(compile(write(tmp_path, TWO_PROPERTIES), backend=backend))
    check(model, ["positions", "strain", "cell"])
    check(model, ["cell"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_xyz_components_and_positions_read_directly(tmp_path, backend):
    model = compile(write(tmp_path, DIPOLE_PROGRAM), backend=backend)
    check(model, ["positions", "strain", "cell"])


INPUT_TENSORMAP = """
model weighted
hyper cutoff = 3.5
input S : systems
input h : tensormap
    samples    (system, atom)
    properties (q)
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index s : systems(S)
index q : range(2)

tensor e
    samples (s)
  = sum(i in atoms(S) where S.system[i] == s) sum(q) h[i, q] * sum(p in P.from(i)) exp(-P.distance[p] * (q + 1))

output e with gradients(positions, strain, cell)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_input_tensormap_is_a_constant_of_the_products(tmp_path, backend):
    from mtdsl.tensor import Labels, TensorBlock, TensorMap

    model = compile(write(tmp_path, INPUT_TENSORMAP), backend=backend)
    atoms = [(s, a) for s, frame in enumerate(frames()) for a in range(len(frame))]
    samples = Labels(["system", "atom"], np.array(atoms, dtype=np.int32))
    values = np.random.default_rng(3).normal(size=(len(atoms), 2))
    h = TensorMap(Labels([], np.zeros((1, 0), dtype=np.int32)),
                  [TensorBlock(values, samples, [], Labels(["q"], np.arange(2, dtype=np.int32)[:, None]))])
    check(model, ["positions", "strain", "cell"], h=h)


def test_the_environment_variable_forces_forward_mode(tmp_path, monkeypatch):
    model = randomized(compile(write(tmp_path, TWO_PROPERTIES), backend="cpp"))
    monkeypatch.setenv("MTDSL_FORWARD_GRADIENTS", "1")
    model(small_batch(), gradients=["positions"])
    assert model.last_gradient_path == {"e": "forward"}


def test_outputs_not_per_system_use_forward_mode(tmp_path):
    model = randomized(compile(write(tmp_path, WHOLE_BATCH), backend="cpp"))
    assert not per_system(model.module, "e")
    model(small_batch(), gradients=["positions"])
    assert model.last_gradient_path == {"e": "forward"}
    per_atom = compile(EXAMPLES / "soap_power_spectrum.mt", backend="cpp", cutoff=3.5, n_radial=2, max_angular=2)
    assert not per_system(per_atom.module, "ps")
    # a sum over all the pairs is refused (conservatively: its condition is not examined)
    pairs = TWO_PROPERTIES.replace("sum(i in atoms(S) where S.system[i] == s) f[i, k] * f[i, k]",
                                   "sum(p in P where S.system[P.first[p]] == s) f[P.first[p], k]")
    assert not per_system(compile(write(tmp_path, pairs), backend="interpreter").module, "e")
    assert per_system(compile(write(tmp_path, TWO_PROPERTIES), backend="interpreter").module, "e")


def test_interpreter_and_pickling(tmp_path):
    path = write(tmp_path, TWO_PROPERTIES)
    model = randomized(compile(path, backend="interpreter"))
    model(small_batch(), gradients=["positions"])
    assert model.last_gradient_path == {"e": "forward"}
    native = randomized(compile(path, backend="cpp"))
    native.reverse_gradients = "always"
    native(small_batch(), gradients=["positions"])
    assert native._products
    loaded = pickle.loads(pickle.dumps(native))
    assert loaded._products == {}
    check(loaded, ["positions", "strain"])


def test_batches_from_reverse_min_atoms_take_the_reverse_path(tmp_path):
    model = randomized(compile(write(tmp_path, TWO_PROPERTIES), backend="cpp"))
    model(frames(), gradients=["positions"])
    assert model.last_gradient_path == {"e": "forward"}  # 10 atoms
    silicon = ase.build.bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 1)
    silicon.rattle(0.05, seed=4)
    assert len(silicon) >= REVERSE_MIN_ATOMS
    batch = [silicon] + frames()
    reverse = model(batch, gradients=["positions", "strain", "cell"])
    assert model.last_gradient_path == {"e": "reverse"}
    model.reverse_gradients = False
    assert_same_blocks(model(batch, gradients=["positions", "strain", "cell"]), reverse,
                       ["positions", "strain", "cell"])
