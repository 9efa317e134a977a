"""The built-ins of LANGUAGE.md §2 added with the sparsity rule (`min max clamp pi erf erfc acos
asin atan2 floor round softplus relu cross to_irrep`): values against numpy/scipy and derivatives
against central finite differences, on the interpreter, cpp, llvm and the torch evaluation
(`model.to_torch()`, whose autograd must equal the forward-mode gradient blocks).

Each function is evaluated per pair of a small batch, on an argument made of the pair's distance
`d` so that it crosses the interesting points (0 for erf, relu, min...)."""

import re

import ase
import ase.build
import numpy as np
import pytest
import scipy.special

import mtdsl

from .test_gradients import assert_matches_finite_differences

#: built-in -> (its expression of the distance `d`, the numpy/scipy reference of `d`)
SCALARS = {
    "erf": ("erf(3.0 * (d - 2.0))", lambda d: scipy.special.erf(3.0 * (d - 2.0))),
    "erfc": ("erfc(3.0 * (d - 2.0))", lambda d: scipy.special.erfc(3.0 * (d - 2.0))),
    "acos": ("acos(d / 3.0 - 0.5)", lambda d: np.arccos(d / 3.0 - 0.5)),
    "asin": ("asin(d / 3.0 - 0.5)", lambda d: np.arcsin(d / 3.0 - 0.5)),
    "atan2": ("atan2(d - 2.0, 1.7 - d)", lambda d: np.arctan2(d - 2.0, 1.7 - d)),
    "floor": ("floor(2.0 * d) * d", lambda d: np.floor(2.0 * d) * d),
    "round": ("round(2.0 * d) * d", lambda d: np.round(2.0 * d) * d),
    "softplus": ("softplus(3.0 * (d - 2.0))", lambda d: np.logaddexp(0.0, 3.0 * (d - 2.0))),
    "gelu": ("gelu(3.0 * (d - 2.0))", lambda d: 3.0 * (d - 2.0) * scipy.special.ndtr(3.0 * (d - 2.0))),
    "relu": ("relu(d - 2.0)", lambda d: np.maximum(d - 2.0, 0.0)),
    "min": ("min(d - 2.0, 0.5 * (2.5 - d))", lambda d: np.minimum(d - 2.0, 0.5 * (2.5 - d))),
    "max": ("max(d - 2.0, 0.5 * (2.5 - d))", lambda d: np.maximum(d - 2.0, 0.5 * (2.5 - d))),
    "clamp": ("clamp(d * d, 2.5, 5.0)", lambda d: np.clip(d * d, 2.5, 5.0)),
    "pi": ("pi * d", lambda d: np.pi * d),
}

PROGRAM = """
model builtins
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index p : P
index k : range({n})
index m : irrep(1)

let d[p] = P.distance[p]

tensor scalars
    samples    (p)
    properties (k)
  = {body}

# an axial vector (o3_sigma = -1) from two proper ones, and a proper one, as irrep 1
tensor vectors
    keys       (o3_lambda = 1, o3_sigma = -1)
    samples    (p)
    components (o3_mu = m)
  = to_irrep(cross(P.vector[p], S.positions[P.first[p]]), m) + 0.5 * to_irrep(cross(P.vector[p], S.positions[P.second[p]]), m)

tensor proper
    keys       (o3_lambda = 1, o3_sigma = 1)
    samples    (p)
    components (o3_mu = m)
  = to_irrep(P.vector[p], m) * P.distance[p]

output scalars with gradients(positions, strain)
output vectors with gradients(positions, strain)
output proper with gradients(positions, strain)
"""


def program_text():
    names = list(SCALARS)
    body = "0.0"
    for k in reversed(range(len(names))):
        expression = re.sub(r"\bd\b", "d[p]", SCALARS[names[k]][0])
        body = f"k == {k} ? {expression}\n    : {body}"
    return PROGRAM.format(n=len(names), body=body)


def batch():
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])
    salt = ase.build.bulk("NaCl", "rocksalt", a=4.1)
    salt.rattle(0.1, seed=1)
    return [water, salt]


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("builtins") / "builtins.mt"
    path.write_text(program_text())
    return path


def pair_geometry(block, systems):
    """Distances, pair vectors and the positions of both atoms of each sample of a pairs block."""
    samples = block.samples.array
    vectors, firsts, seconds = [], [], []
    for system, first, second, a, b, c in samples:
        atoms = systems[system]
        shift = np.array([a, b, c]) @ atoms.cell.array
        vectors.append(atoms.positions[second] + shift - atoms.positions[first])
        firsts.append(atoms.positions[first])
        seconds.append(atoms.positions[second])
    vectors = np.array(vectors)
    return np.linalg.norm(vectors, axis=1), vectors, np.array(firsts), np.array(seconds)


BACKENDS = ["interpreter", "cpp", "llvm"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_equal_numpy_and_scipy(path, backend):
    systems = batch()
    out = mtdsl.compile(path, backend=backend)(systems)
    block = out["scalars"].block()
    distances, vectors, firsts, seconds = pair_geometry(block, systems)
    assert len(distances) > 10 and (distances < 2.0).any() and (distances > 2.5).any()
    for k, (name, (_, reference)) in enumerate(SCALARS.items()):
        np.testing.assert_allclose(block.values[:, k], reference(distances), rtol=1e-12, atol=1e-12, err_msg=name)
    # metatensor's irrep 1: m = -1, 0, 1 are y, z, x, unnormalized
    axial = np.cross(vectors, firsts) + 0.5 * np.cross(vectors, seconds)
    np.testing.assert_allclose(out["vectors"].block().values[:, :, 0], axial[:, [1, 2, 0]], rtol=0, atol=1e-12)
    proper = vectors * distances[:, None]
    np.testing.assert_allclose(out["proper"].block().values[:, :, 0], proper[:, [1, 2, 0]], rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("output", ["scalars", "vectors"])
def test_gradients_match_finite_differences(path, backend, output):
    assert_matches_finite_differences(mtdsl.compile(path, backend=backend), batch(), output, ["positions", "strain"])


def test_e3nn_convention_orders_irrep_one_as_x_y_z(tmp_path):
    text = program_text().replace("model builtins", 'model builtins\nconvention sph = "e3nn"')
    (tmp_path / "e3nn.mt").write_text(text)
    systems = batch()
    for backend in BACKENDS:
        block = mtdsl.compile(tmp_path / "e3nn.mt", backend=backend)(systems)["proper"].block()
        distances, vectors, _, _ = pair_geometry(block, systems)
        np.testing.assert_allclose(block.values[:, :, 0], vectors * distances[:, None], rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["interpreter", "cpp"])
def test_torch_autograd_equals_the_gradient_blocks(path, backend):
    import torch

    systems = batch()
    model = mtdsl.compile(path, backend=backend)
    module = model.to_torch()
    expected = model(systems, gradients=["positions"])
    positions = [torch.tensor(atoms.positions, requires_grad=True) for atoms in systems]
    inputs = [mtdsl.System(torch.tensor(atoms.numbers), x, torch.tensor(atoms.cell.array), torch.tensor(atoms.pbc))
              for atoms, x in zip(systems, positions)]
    out = module(inputs)
    offsets = np.cumsum([0] + [len(atoms) for atoms in systems])
    for name in ("scalars", "vectors"):
        values = out[name].block().values
        reference = expected[name].block()
        np.testing.assert_allclose(values.detach().numpy(), reference.values, rtol=0, atol=1e-12)
        weights = torch.tensor(np.random.default_rng(0).normal(size=tuple(values.shape)))
        grads = torch.autograd.grad((values * weights).sum(), positions, retain_graph=True)
        dense = np.zeros((offsets[-1], 3))
        gradient = reference.gradient("positions")
        rows_weights = weights.numpy().reshape(len(reference.samples), -1)[gradient.samples.column("sample")]
        contracted = np.einsum("sxk,sk->sx", gradient.values.reshape(len(gradient.samples), 3, -1), rows_weights)
        rows = offsets[gradient.samples.column("system")] + gradient.samples.column("atom")
        np.add.at(dense, rows, contracted)
        np.testing.assert_allclose(np.concatenate([g.numpy() for g in grads]), dense, rtol=0, atol=1e-10)


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_cross_and_to_irrep_transform_as_declared(path, backend):
    # rotations and inversions: the cross product is an axial vector (o3_sigma = -1 as irrep 1)
    from mtdsl.testing import assert_equivariant, random_systems

    assert_equivariant(mtdsl.compile(path, backend=backend), random_systems(seed=3))


def test_checker_knows_the_cross_product_is_axial(tmp_path):
    from mtdsl.compile import CompileError

    (tmp_path / "wrong.mt").write_text(program_text().replace("o3_sigma = -1", "o3_sigma = 1"))
    with pytest.raises(CompileError, match="E306"):
        mtdsl.compile(tmp_path / "wrong.mt")


CARTESIAN = """
model cartesian
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
index x, y : xyz
tensor t
    samples    (i)
    components (xyz_1 = x, xyz_2 = y)
  = sum(p in P.from(i)) BODY
tensor v
    samples    (i)
    components (xyz = x)
  = sum(p in P.from(i)) P.vector[p, x] * exp(-P.distance[p])
output t
output v
"""


def test_numeric_check_transforms_every_xyz_component_as_a_vector(tmp_path):
    from mtdsl.tensor import Labels, TensorBlock, TensorMap
    from mtdsl.testing import EquivarianceError, assert_equivariant, random_systems

    path = tmp_path / "cartesian.mt"
    path.write_text(CARTESIAN.replace("BODY", "P.vector[p, x] * P.vector[p, y] / P.distance[p]"))
    model = mtdsl.compile(path)
    assert_equivariant(model, random_systems(seed=1))  # rank 1 and rank 2 (xyz_1, xyz_2)

    def wrong(frames):
        # a rank-2 output whose second axis is a fixed direction: not a tensor
        block = model(frames)["v"].block()
        values = block.values[:, :, None, :] * np.array([1.0, 0.0, 0.0])[None, None, :, None]
        components = [Labels(["xyz_1"], np.arange(3).reshape(-1, 1)), Labels(["xyz_2"], np.arange(3).reshape(-1, 1))]
        return {"t": TensorMap(Labels(["_"], np.zeros((1, 1), dtype=np.int32)),
                               [TensorBlock(values, block.samples, components, block.properties)])}

    with pytest.raises(EquivarianceError, match="output t"):
        assert_equivariant(wrong, random_systems(seed=1))


ENERGY = """
model energy
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index s : systems(S)
tensor energy
    samples    (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s) sum(p in P.from(i))
      softplus(2.0 - P.distance[p]) * erf(P.distance[p]) + clamp(P.distance[p], 1.0, 2.0) * atan2(1.0, P.distance[p])
    + relu(2.0 - P.distance[p]) * dot(cross(P.vector[p], S.positions[i]), cross(P.vector[p], S.positions[i])) + floor(P.distance[p]) * asin(P.distance[p] / 3.0)
output energy with gradients(positions, strain)
"""


@pytest.mark.parametrize("backend", ["cpp", "llvm"])
def test_reverse_products_of_the_built_ins_equal_forward_mode(tmp_path, backend):
    # an energy takes the reverse (VJP) kernels of runtime/gradients/native_products.py: same blocks as forward mode
    (tmp_path / "energy.mt").write_text(ENERGY)
    systems = batch()
    model = mtdsl.compile(tmp_path / "energy.mt", backend=backend)
    model.reverse_gradients = "always"
    reverse = model(systems, gradients=["positions", "strain"])["energy"].block()
    assert model.last_gradient_path["energy"] == "reverse"
    model.reverse_gradients = False
    forward = model(systems, gradients=["positions", "strain"])["energy"].block()
    for parameter in ("positions", "strain"):
        assert reverse.gradient(parameter).samples == forward.gradient(parameter).samples
        np.testing.assert_allclose(reverse.gradient(parameter).values, forward.gradient(parameter).values,
                                   rtol=0, atol=1e-10 * np.abs(forward.gradient(parameter).values).max())
    assert_matches_finite_differences(model, systems, "energy", ["positions", "strain"])


@pytest.mark.parametrize("backend", ["cpp", "llvm"])
def test_float32_follows_float64(path, backend):
    # single precision calls the float versions of the C library (erff, atan2f, log1pf...)
    systems = batch()
    single = mtdsl.compile(path, backend=backend, dtype=np.float32)(systems)
    double = mtdsl.compile(path, backend=backend)(systems)
    for name in ("scalars", "vectors", "proper"):
        expected = double[name].block().values
        found = single[name].block().values
        assert found.dtype == np.float32
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


CENTRED = """
model centred
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
index m : irrep(1)
tensor t
    keys       (o3_lambda = 1, o3_sigma = -1)
    samples    (i)
    components (o3_mu = m)
  = sum(p in P.from(i))
      softplus(2.0 - P.distance[p]) * clamp(erfc(P.distance[p] - 2.0), 0.2, 1.5)
    * to_irrep(cross(P.vector[p], S.positions[i]), m) * atan2(P.distance[p], 1.5)
output t with gradients(positions, strain)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_centred_sums_of_the_built_ins_match_finite_differences(tmp_path, backend):
    # a sum over the pairs of each centre: the native backends' pass over pairs (fused with its gradient)
    (tmp_path / "centred.mt").write_text(CENTRED)
    model = mtdsl.compile(tmp_path / "centred.mt", backend=backend)
    assert_matches_finite_differences(model, batch(), "t", ["positions", "strain"])
    if backend != "interpreter":
        assert not model.compiled.fallbacks and not model.compiled.last_run_fallbacks
