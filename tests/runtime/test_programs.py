"""The reference programs compiled from `.mt` files and run by the interpreter.

featomic parity for the spherical expansion and the power spectrum (issue #6's
hypers, on the shipped structures), the energy model against numpy on the
power spectrum, the convolution against a per-pair loop, block sparsity on odd
inputs, and the errors a user meets.
"""

import copy
import pathlib

import ase
import ase.io
import featomic
import numpy as np
import pytest

import mtdsl
from mtdsl.compile import CompileError, compile
from mtdsl.math.cg import cg
from mtdsl.math.sph import spherical_harmonics
from mtdsl.math.wigner import wigner_d

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
#: featomic's own defaults (center_atom_weight 1.0, as the examples' `center_atom_weight` hyper)
HYPERS = {
    "cutoff": {"radius": 5.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
    "density": {"type": "Gaussian", "width": 0.3, "center_atom_weight": 1.0},
    "basis": {"type": "TensorProduct", "max_angular": 4, "radial": {"type": "Gto", "max_radial": 5},
              "spline_accuracy": 1e-12},
}
STRUCTURES = ["water.xyz", "silicon.xyz", "mixed.xyz"]


def featomic_hypers(center_atom_weight=1.0):
    hypers = copy.deepcopy(HYPERS)  # the callers change nested entries (basis.radial): never HYPERS itself
    hypers["density"]["center_atom_weight"] = center_atom_weight
    return hypers


@pytest.fixture(scope="module")
def power_spectrum():
    return compile(EXAMPLES / "soap_power_spectrum.mt")


@pytest.fixture(scope="module")
def expansion():
    return compile(EXAMPLES / "spherical_expansion.mt")


def frames(name):
    return ase.io.read(EXAMPLES / "data" / name, ":")


def assert_matches_featomic(ours, theirs):
    """The same keys (ours in lexicographic order), the same samples in each block, in the same
    order, and the same values within 1e-8 of the block's largest."""
    assert ours.keys.names == theirs.keys.names
    their_keys = np.asarray(theirs.keys.values)
    np.testing.assert_array_equal(ours.keys.array, their_keys[np.lexsort(their_keys.T[::-1])])
    for key, block in theirs.items():
        mine = ours.block(**{name: int(value) for name, value in zip(key.names, key.values)})
        assert mine.samples.names == block.samples.names
        np.testing.assert_array_equal(mine.samples.array, np.asarray(block.samples.values))
        assert [c.names for c in mine.components] == [c.names for c in block.components]
        assert mine.properties.names == block.properties.names
        columns = mine.properties.positions(np.asarray(block.properties.values))
        assert (columns >= 0).all() and len(columns) == len(mine.properties)
        scale = np.abs(block.values).max()
        np.testing.assert_allclose(mine.values[..., columns], block.values, rtol=0, atol=1e-8 * scale)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_spherical_expansion_equals_featomic(expansion, structure):
    systems = frames(structure)
    assert_matches_featomic(expansion(systems)["rho"], featomic.SphericalExpansion(**HYPERS).compute(systems))


@pytest.mark.parametrize("structure", STRUCTURES)
def test_power_spectrum_equals_featomic(power_spectrum, structure):
    systems = frames(structure)
    assert_matches_featomic(power_spectrum(systems)["ps"], featomic.SoapPowerSpectrum(**HYPERS).compute(systems))


def molecules_and_crystals():
    """A mixed batch: molecules of several elements (species absent from most of them), a
    rattled rock salt with one substituted atom, an isolated atom."""
    from ase.build import molecule

    salt = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    salt.numbers[3] = 6
    salt.rattle(0.1, seed=3)
    lonely = ase.Atoms("N", positions=[[0, 0, 0]])
    return [molecule("CH3CH2OH"), molecule("H2O"), salt, lonely, molecule("CH3NO2")]


@pytest.mark.parametrize("backend", ["interpreter", "cpp", "llvm"])
@pytest.mark.parametrize("center_atom_weight", [1.0, 0.0])
def test_mixed_batch_equals_featomic_exactly(backend, center_atom_weight):
    """featomic's keys and samples exactly (absent species pairs give no block, centres without
    such neighbours no sample), with its default central-atom weight and with weight 0."""
    systems = molecules_and_crystals()
    hypers = featomic_hypers(center_atom_weight)
    model = compile(EXAMPLES / "soap_power_spectrum.mt", backend=backend, center_atom_weight=center_atom_weight,
                    max_angular=3, n_radial=4)
    hypers["basis"]["max_angular"], hypers["basis"]["radial"]["max_radial"] = 3, 3
    ps = model(systems)["ps"]
    assert_matches_featomic(ps, featomic.SoapPowerSpectrum(**hypers).compute(systems))
    expansion = compile(EXAMPLES / "spherical_expansion.mt", backend=backend, center_atom_weight=center_atom_weight,
                        max_angular=3, n_radial=4)
    assert_matches_featomic(expansion(systems)["rho"], featomic.SphericalExpansion(**hypers).compute(systems))


def test_dense_option_keeps_every_key_tuple():
    """`compile(..., dense=True)`: a block for every key tuple and sample of the domains, zeros
    included; its present entries equal the sparse form's."""
    systems = molecules_and_crystals()
    sparse = compile(EXAMPLES / "soap_power_spectrum.mt", max_angular=2, n_radial=3)(systems)["ps"]
    dense = compile(EXAMPLES / "soap_power_spectrum.mt", max_angular=2, n_radial=3, dense=True)(systems)["ps"]
    n_species = len({int(z) for atoms in systems for z in atoms.numbers})
    assert len(dense) == n_species * n_species * (n_species + 1) // 2 > len(sparse)
    for key, block in dense.items():
        position = sparse.keys.position(np.asarray(key.values))
        rows = np.arange(len(block.samples))
        if position is not None:
            kept = sparse.block(position)
            rows = block.samples.positions(kept.samples.array)
            np.testing.assert_array_equal(kept.values, block.values[rows])
            rows = np.setdiff1d(np.arange(len(block.samples)), rows)
        assert np.all(block.values[rows] == 0.0)  # absent: zeros in the dense form


def test_provenance_is_recorded(power_spectrum):
    from mtdsl.provenance import history

    out = power_spectrum(mtdsl.read_structures(EXAMPLES / "data" / "water.xyz"))["ps"]

    record = history(out)[-1]
    assert record["program"].endswith("soap_power_spectrum.mt")
    assert len(record["program_sha256"]) == 64
    assert record["hypers"]["cutoff"] == 5.0
    assert any("water.xyz" in source for source in record["inputs"])


def test_energy_model_is_linear_in_the_power_spectrum():
    systems = frames("mixed.xyz") + frames("water.xyz")
    species = sorted({int(z) for atoms in systems for z in atoms.numbers})
    model = compile(EXAMPLES / "soap_energy.mt", species=species, seed=3)
    rng = np.random.default_rng(0)
    for name in model.parameters:
        model.parameters[name] = rng.normal(size=model.parameters[name].shape)
    energy = model(systems)["energy"].block()
    assert energy.samples.names == ["system"]
    ps = compile(EXAMPLES / "soap_power_spectrum.mt")(systems)["ps"]
    w, e0 = model.parameters["w"], model.parameters["e0"]
    expected = np.zeros(len(systems))
    position = {z: k for k, z in enumerate(species)}
    for key, block in ps.items():
        a, b1, b2 = (position[int(v)] for v in key.values)
        for row, (system, _) in enumerate(block.samples.array):
            for column, (l, n1, n2) in enumerate(block.properties.array):
                expected[system] += w[a, b1, b2, l, n1, n2] * block.values[row, column]
    for atoms_index, atoms in enumerate(systems):
        expected[atoms_index] += sum(e0[position[int(z)]] for z in atoms.numbers)
    np.testing.assert_allclose(energy.values[:, 0], expected, rtol=1e-10)


def features_for(systems, lmax=2, width=16, seed=0):
    """A random `h` input: keys (o3_lambda, o3_sigma), samples (system, atom), o3_mu, q."""
    rng = np.random.default_rng(seed)
    samples = np.array([[s, a] for s, atoms in enumerate(systems) for a in range(len(atoms))], dtype=np.int32)
    blocks = []
    for l in range(lmax + 1):
        blocks.append(mtdsl.TensorBlock(
            rng.normal(size=(len(samples), 2 * l + 1, width)),
            mtdsl.Labels(["system", "atom"], samples),
            [mtdsl.Labels(["o3_mu"], np.arange(-l, l + 1).reshape(-1, 1))],
            mtdsl.Labels.range("q", width),
        ))
    keys = mtdsl.Labels(["o3_lambda", "o3_sigma"], np.array([[l, 1] for l in range(lmax + 1)]))
    return mtdsl.TensorMap(keys, blocks)


def test_convolution_equals_a_loop_over_pairs():
    atoms = frames("water.xyz")[0]
    model = compile(EXAMPLES / "equivariant_convolution.mt")
    h = features_for([atoms])
    msg = model([atoms], h=h)["msg"]
    wr = model.parameters["wr"]
    pairs = mtdsl.neighbors([atoms], 4.0)
    vectors, distances = np.asarray(pairs.vectors), np.asarray(pairs.distances)
    fc = np.where(distances < 3.5, 1.0, 0.5 * (1 + np.cos(np.pi * (distances - 3.5) / 0.5)))
    radial = np.stack([distances**k * np.exp(-distances**2 / (2 * 0.25)) * fc for k in range(8)], axis=1)
    sph = spherical_harmonics(vectors, 2)
    expected = {L: np.zeros((len(atoms), 2 * L + 1, 16)) for L in range(3)}
    for p, (i, j) in enumerate(zip(pairs.first, pairs.second)):
        for l1 in range(3):
            for l2 in range(3):
                for L in range(3):
                    if (l1 + l2 + L) % 2:
                        continue
                    weights = radial[p] @ wr[:, l1, l2, L, :]
                    coupled = np.einsum("abc,a,bq->cq", cg(l1, l2, L), sph[p, l1 * l1 : (l1 + 1) ** 2],
                                        h.block(o3_lambda=l2).values[j])
                    expected[L][i] += coupled * weights
    for L in range(3):
        np.testing.assert_allclose(msg.block(o3_lambda=L).values, expected[L], atol=1e-12)


def test_convolution_is_equivariant():
    atoms = frames("water.xyz")[0]
    model = compile(EXAMPLES / "equivariant_convolution.mt")
    h = features_for([atoms])
    rotation = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]
    rotation *= np.sign(np.linalg.det(rotation))
    rotated_atoms = atoms.copy()
    rotated_atoms.positions = atoms.positions @ rotation.T
    rotated_h = mtdsl.TensorMap(h.keys, [
        mtdsl.TensorBlock(np.einsum("mn,snq->smq", wigner_d(l, rotation), block.values), block.samples,
                          block.components, block.properties)
        for l, block in enumerate(h.blocks())
    ])
    before = model([atoms], h=h)["msg"]
    after = model([rotated_atoms], h=rotated_h)["msg"]
    for L in range(3):
        expected = np.einsum("mn,snq->smq", wigner_d(L, rotation), before.block(o3_lambda=L).values)
        np.testing.assert_allclose(after.block(o3_lambda=L).values, expected, atol=1e-10)


def test_odd_structures_give_zeros_or_absent_blocks():
    isolated = ase.Atoms("CO", positions=[[0, 0, 0], [20, 0, 0]])
    single = ase.Atoms("Si", positions=[[0, 0, 0]])
    silicon = frames("silicon.xyz")[0]
    power_spectrum = compile(EXAMPLES / "soap_power_spectrum.mt", center_atom_weight=0.0)
    out = power_spectrum([isolated, single, silicon])["ps"]
    assert set(out.keys.column("center_type").tolist()) == {6, 8, 14}
    for key, block in out.items():
        rows = block.samples.array
        far = rows[:, 0] < 2  # atoms of the first two systems have no neighbours
        assert np.all(block.values[far] == 0.0)
        # an atom's neighbour species are its own (the central-atom term) and those within the cutoff
        if key["neighbor_1_type"] != key["center_type"] or key["neighbor_2_type"] != key["center_type"]:
            assert not far.any()
    # a species present only in some frames gives blocks only where it is a centre
    assert len(out.block(center_type=6, neighbor_1_type=6, neighbor_2_type=6).samples) == 1
    assert out.keys.position([6, 6, 8]) is None  # C and O never meet


def test_unknown_hyper_is_E103():
    with pytest.raises(CompileError) as error:
        compile(EXAMPLES / "spherical_expansion.mt", not_a_hyper=3)
    assert error.value.diagnostics[0].code == "E103"


def test_species_params_need_species():
    with pytest.raises(CompileError) as error:
        compile(EXAMPLES / "soap_energy.mt")
    assert {d.code for d in error.value.diagnostics} == {"E206"}
    assert "species" in str(error.value)


def test_unlisted_species_is_a_run_error():
    model = compile(EXAMPLES / "soap_energy.mt", species=[1, 8])
    with pytest.raises(mtdsl.MtdslError, match=r"species \[14\] are not among the species \[1, 8\]"):
        model(frames("silicon.xyz"))


def test_undeclared_gradient_is_an_error():
    model = compile(EXAMPLES / "equivariant_convolution.mt")
    with pytest.raises(mtdsl.MtdslError, match="output msg declares gradients none"):
        model(frames("water.xyz"), gradients=["positions"], h=features_for(frames("water.xyz")))


def test_tensormap_input_is_checked():
    model = compile(EXAMPLES / "equivariant_convolution.mt")
    systems = frames("water.xyz")
    with pytest.raises(mtdsl.MtdslError, match="needs the tensormap input 'h'"):
        model(systems)
    h = features_for(systems)
    bad = mtdsl.TensorMap(h.keys, [mtdsl.TensorBlock(b.values, b.samples, b.components, mtdsl.Labels.range("p", 16))
                                   for b in h.blocks()])
    with pytest.raises(mtdsl.MtdslError, match=r"input h, block \(o3_lambda=0, o3_sigma=1\): properties are labelled \['p'\]"):
        model(systems, h=bad)


def test_float32_on_request():
    systems = frames("mixed.xyz")
    single = compile(EXAMPLES / "soap_power_spectrum.mt", dtype=np.float32)(systems)["ps"]
    double = compile(EXAMPLES / "soap_power_spectrum.mt")(systems)["ps"]
    assert single.keys == double.keys
    for a, b in zip(single.blocks(), double.blocks()):
        assert a.values.dtype == np.float32
        assert a.samples == b.samples and a.properties == b.properties
        np.testing.assert_allclose(a.values, b.values, rtol=0, atol=1e-5 * np.abs(b.values).max())


@pytest.mark.parametrize("backend", ["interpreter", "cpp", "llvm"])
def test_no_frames_give_no_blocks(backend):
    model = compile(EXAMPLES / "soap_power_spectrum.mt", backend=backend)
    out = model([], gradients=["positions"])["ps"]
    assert len(out) == 0 and out.keys.names == ["center_type", "neighbor_1_type", "neighbor_2_type"]


ODD_FRAMES = [
    ase.Atoms("CO", positions=[[0, 0, 0], [20, 0, 0]]),  # isolated atoms
    ase.Atoms("H", positions=[[0, 0, 0]]),  # a single atom
    ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0], [-0.757, 0.586, 0]]),  # H only here
]


@pytest.mark.parametrize("program", ["spherical_expansion.mt", "soap_power_spectrum.mt", "soap_energy.mt",
                                     "equivariant_convolution.mt"])
def test_every_program_on_odd_structures(program):
    """Isolated atoms, a single atom, a species absent from some frames: zeros or absent blocks."""
    from mtdsl.testing import random_inputs

    hypers = {} if program == "equivariant_convolution.mt" else {"n_radial": 3, "max_angular": 2}
    if program != "equivariant_convolution.mt":
        hypers["center_atom_weight"] = 0.0
    model = compile(EXAMPLES / program, species=[1, 6, 8], **hypers)
    for name, values in model.parameters.items():
        model.parameters[name] = np.random.default_rng(1).normal(size=values.shape)
    inputs = random_inputs(model.module, ODD_FRAMES)
    for output in model(ODD_FRAMES, **inputs).values():
        for block in output.blocks():
            assert np.all(np.isfinite(block.values))
            if "atom" in block.samples.names:
                lonely = block.samples.array[:, 0] < 2  # the atoms of the first two systems have no neighbour
                if program != "soap_energy.mt":
                    assert np.all(block.values[lonely] == 0.0)
