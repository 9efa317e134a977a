"""Gradient blocks (forward mode on the IR, `mtdsl/ir/passes/autodiff.py`): the reference interpreter and,
through the default backend, the compiled gradient kernels (`mtdsl/ir/passes/terms.py`).

featomic parity of the positions, strain and cell gradients of the spherical
expansion and the power spectrum on the shipped structures and edge cases, with the
interpreter, cpp and llvm backends (gradient samples exactly, values to 1e-8); central finite
differences of every reference program (positions, strain, cell) on a small
batch of molecules and crystals, and of programs beyond them (every built-in,
pair samples, neighbours of neighbours, message passing, three-body sums, a
vector output, the e3nn convention); the energy model's gradient is minus the
forces; layout and sparsity of the rows; compile-time errors for gradients that
cannot exist.
"""

import pathlib
import shutil

import ase
import ase.build
import ase.io
import featomic
import numpy as np
import pytest

import mtdsl
from mtdsl.compile import CompileError, compile

from .test_programs import HYPERS, features_for

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
STRUCTURES = ["water.xyz", "silicon.xyz", "mixed.xyz"]


def frames(name):
    return ase.io.read(EXAMPLES / "data" / name, ":")


def small_batch():
    """A molecule and two small crystals (one triclinic, two species): few atoms, many images."""
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])
    salt = ase.build.bulk("NaCl", "rocksalt", a=5.64)
    salt.set_cell(salt.cell.array + [[0.0, 0.1, 0.0], [0.05, 0.0, 0.0], [0.0, 0.0, 0.1]], scale_atoms=True)
    salt.rattle(0.1, seed=1)
    silicon = ase.build.bulk("Si", "diamond", a=5.43)
    silicon.rattle(0.1, seed=2)
    return [water, salt, silicon]


def edge_cases():
    """Where gradient rows are easy to get wrong: atoms without neighbours, a lone atom among its own
    periodic images (a 3 A cell, under the 5 A cutoff), a triclinic two-species crystal."""
    lone = ase.Atoms("Si", positions=[[0.1, 0.2, 0.3]], cell=np.eye(3) * 3.0, pbc=True)
    isolated = ase.Atoms("CO", positions=[[0, 0, 0], [20, 0, 0]])
    return [isolated, lone, small_batch()[1]]


def parity_systems(name):
    return edge_cases() if name == "edge cases" else frames(name)


#: the shipped structures and the edge cases, for the featomic parity of the gradients
PARITY_STRUCTURES = [*STRUCTURES, "edge cases"]


def with_gradients(tmp_path, program, gradients="positions, strain, cell"):
    """A copy of an example (and of the files it uses) whose output declares `gradients`."""
    for source in EXAMPLES.glob("*.mt"):
        shutil.copy(source, tmp_path / source.name)
    path = tmp_path / program
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("output "):
            name = line.split()[1]
            line = f"output {name} with gradients({gradients})"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- featomic parity ---------------------------------------------------------------------------


def assert_gradients_match_featomic(ours, theirs, parameter):
    """featomic's keys, and in each block its samples, properties and gradient samples exactly, in its
    order: a positions row (sample, system, atom) for the centre and for every atom of the block's
    neighbour type within the cutoff (featomic's AtomCenteredSamples; a periodic self-image folds into
    the centre's row), one strain or cell row per sample. Gradient values within 1e-8 of the
    block's largest: measured worst 5e-10 (mixed.xyz), the error of featomic's splined radial integral
    (spline_accuracy 1e-12) against our closed form."""
    their_keys = np.asarray(theirs.keys.values)
    np.testing.assert_array_equal(ours.keys.array, their_keys[np.lexsort(their_keys.T[::-1])])
    # a block that featomic finds exactly zero by symmetry (odd l of a lone atom's self-images) is
    # measured against the tensor's largest gradient value: ours holds rounding there (1e-17)
    largest = max(np.abs(np.asarray(block.gradient(parameter).values)).max(initial=0.0) for block in theirs)
    for key, block in theirs.items():
        mine = ours.block(**{name: int(value) for name, value in zip(key.names, key.values)})
        np.testing.assert_array_equal(mine.samples.array, np.asarray(block.samples.values))
        np.testing.assert_array_equal(mine.properties.array, np.asarray(block.properties.values))
        expected, gradient = block.gradient(parameter), mine.gradient(parameter)
        assert gradient.samples.names == expected.samples.names
        np.testing.assert_array_equal(gradient.samples.array, np.asarray(expected.samples.values))
        assert [c.names for c in gradient.components] == [c.names for c in expected.components]
        assert gradient.properties == mine.properties
        values = np.asarray(expected.values)
        scale = np.abs(values).max(initial=0.0) or largest
        np.testing.assert_allclose(gradient.values, values, rtol=0, atol=1e-8 * scale)


#: the reference interpreter and the compiled gradient kernels (mtdsl/ir/passes/terms.py) of both backends
BACKENDS = ["interpreter", "cpp", "llvm"]


#: the example programs featomic also computes: (file, output, featomic calculator)
FEATOMIC_PROGRAMS = [
    ("spherical_expansion.mt", "rho", "SphericalExpansion"),
    ("soap_power_spectrum.mt", "ps", "SoapPowerSpectrum"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("structure", PARITY_STRUCTURES)
@pytest.mark.parametrize("program, output, calculator", FEATOMIC_PROGRAMS, ids=["spherical_expansion", "power_spectrum"])
def test_gradients_equal_featomic(program, output, calculator, structure, backend):
    systems = parity_systems(structure)
    ours = compile(EXAMPLES / program, backend=backend)(systems, gradients=["positions", "strain"])[output]
    theirs = getattr(featomic, calculator)(**HYPERS).compute(systems, gradients=["positions", "strain"])
    assert_gradients_match_featomic(ours, theirs, "positions")
    assert_gradients_match_featomic(ours, theirs, "strain")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.filterwarnings("ignore")
def test_cell_gradients_equal_featomic(tmp_path, backend):
    systems = frames("mixed.xyz")
    model = compile(with_gradients(tmp_path, "spherical_expansion.mt"), backend=backend)
    ours = model(systems, gradients=["cell"])["rho"]
    theirs = featomic.SphericalExpansion(**HYPERS).compute(systems, gradients=["cell"])
    assert_gradients_match_featomic(ours, theirs, "cell")


# ---- finite differences ----------------------------------------------------------------------------


def values_of(model, systems, output, inputs):
    tensor = model(systems, **inputs)[output]
    return {tuple(int(v) for v in key.values): (block.samples, block.values) for key, block in tensor.items()}


def perturbed(systems, change):
    copies = [atoms.copy() for atoms in systems]
    for index, atoms in enumerate(copies):
        change(index, atoms)
    return copies


def finite_differences(model, systems, output, parameter, inputs, h=1e-5):
    """Central differences of every block: [samples, atoms, 3, ...] (positions) or [samples, 3, 3, ...]."""
    n_atoms = sum(len(atoms) for atoms in systems)
    offsets = np.cumsum([0] + [len(atoms) for atoms in systems])
    reference = values_of(model, systems, output, inputs)
    result = {key: np.zeros((len(samples), n_atoms if parameter == "positions" else 3, 3) + values.shape[1:])
              for key, (samples, values) in reference.items()}

    def difference(change, store):
        plus = values_of(model, perturbed(systems, lambda s, a: change(s, a, h)), output, inputs)
        minus = values_of(model, perturbed(systems, lambda s, a: change(s, a, -h)), output, inputs)
        for key, (samples, _) in reference.items():
            assert plus[key][0] == samples and minus[key][0] == samples
            store(key, (plus[key][1] - minus[key][1]) / (2 * h))

    if parameter == "positions":
        for system, atoms in enumerate(systems):
            for atom in range(len(atoms)):
                for x in range(3):
                    def move(s, a, step, system=system, atom=atom, x=x):
                        if s == system:
                            a.positions[atom, x] += step

                    def store(key, value, atom=offsets[system] + atom, x=x):
                        result[key][:, atom, x] = value

                    difference(move, store)
    else:
        for a in range(3):
            for b in range(3):
                def deform(s, atoms, step, a=a, b=b):
                    delta = np.zeros((3, 3))
                    delta[a, b] = step
                    if parameter == "strain":
                        atoms.set_cell(atoms.cell.array @ (np.eye(3) + delta), scale_atoms=False)
                        atoms.positions = atoms.positions @ (np.eye(3) + delta)
                    else:  # the cell at fixed positions
                        atoms.set_cell(atoms.cell.array + delta, scale_atoms=False)

                def store(key, value, a=a, b=b):
                    result[key][:, a, b] = value

                difference(deform, store)
    return result


def dense(gradient, parameter, n_atoms, offsets, n_samples):
    values = gradient.values
    if parameter == "positions":
        result = np.zeros((n_samples, n_atoms) + values.shape[1:])
        rows = gradient.samples.array
        np.add.at(result, (rows[:, 0], offsets[rows[:, 1]] + rows[:, 2]), values)
        return result
    result = np.zeros((n_samples,) + values.shape[1:])
    np.add.at(result, gradient.samples.array[:, 0], values)
    return result


def assert_matches_finite_differences(model, systems, output, parameters, inputs=None):
    inputs = inputs or {}
    tensor = model(systems, gradients=parameters, **inputs)[output]
    n_atoms = sum(len(atoms) for atoms in systems)
    offsets = np.cumsum([0] + [len(atoms) for atoms in systems])
    checked = 0
    for parameter in parameters:
        expected = finite_differences(model, systems, output, parameter, inputs)
        scale = max(np.abs(reference).max() for reference in expected.values())
        assert scale > 0
        for key, block in tensor.items():
            reference = expected[tuple(int(v) for v in key.values)]
            ours = dense(block.gradient(parameter), parameter, n_atoms, offsets, len(block.samples))
            np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6 * scale,
                                       err_msg=f"{output} {parameter} block {key.values}")
            checked += int(np.abs(reference).max() > 0)
    assert checked > 0


def test_spherical_expansion_matches_finite_differences(tmp_path):
    model = compile(with_gradients(tmp_path, "spherical_expansion.mt"))
    assert_matches_finite_differences(model, small_batch(), "rho", ["positions", "strain", "cell"])


def test_power_spectrum_matches_finite_differences():
    model = compile(EXAMPLES / "soap_power_spectrum.mt", max_angular=2, n_radial=3)
    assert_matches_finite_differences(model, small_batch(), "ps", ["positions", "strain"])


def random_energy_model(systems, seed=0, **hypers):
    species = sorted({int(z) for atoms in systems for z in atoms.numbers})
    model = compile(EXAMPLES / "soap_energy.mt", species=species, **hypers)
    rng = np.random.default_rng(seed)
    for name in model.parameters:
        model.parameters[name] = rng.normal(size=model.parameters[name].shape)
    return model


def test_energy_model_matches_finite_differences():
    systems = small_batch()
    model = random_energy_model(systems, max_angular=2, n_radial=3)
    assert_matches_finite_differences(model, systems, "energy", ["positions", "strain"])


def test_energy_gradient_is_minus_the_forces():
    systems = small_batch()
    model = random_energy_model(systems, seed=1, max_angular=3, n_radial=4)
    gradient = model(systems, gradients=["positions"])["energy"].block().gradient("positions")
    assert gradient.samples.names == ["sample", "system", "atom"]
    assert gradient.values.shape[1:] == (3, 1)
    h = 1e-4
    for system, atoms in enumerate(systems):
        forces = np.zeros((len(atoms), 3))
        for atom in range(len(atoms)):
            for x in range(3):
                energies = []
                for step in (h, -h):
                    moved = [a.copy() for a in systems]
                    moved[system].positions[atom, x] += step
                    energies.append(model(moved)["energy"].block().values[system, 0])
                forces[atom, x] = -(energies[0] - energies[1]) / (2 * h)
        rows = gradient.samples.array
        mine = rows[:, 1] == system
        assert np.all(rows[mine, 0] == system)  # the sample of system s is its row s
        ours = np.zeros((len(atoms), 3))
        ours[rows[mine, 2]] = gradient.values[mine, :, 0]
        np.testing.assert_allclose(-ours, forces, rtol=0, atol=1e-7 * np.abs(forces).max())


def test_convolution_matches_finite_differences(tmp_path):
    systems = small_batch()
    model = compile(with_gradients(tmp_path, "equivariant_convolution.mt"), width=4)
    h = features_for(systems, width=4, seed=3)
    assert_matches_finite_differences(model, systems, "msg", ["positions", "strain", "cell"], {"h": h})


# ---- layout, sparsity, requests -----------------------------------------------------------------------


def test_only_the_asked_gradients_are_computed():
    model = compile(EXAMPLES / "spherical_expansion.mt")
    systems = frames("water.xyz")
    plain = model(systems)["rho"]
    assert all(block.gradients_list() == [] for block in plain.blocks())
    out = model(systems, gradients=["strain"])["rho"]
    assert all(block.gradients_list() == ["strain"] for block in out.blocks())
    block = out.block(0)
    gradient = block.gradient("strain")
    assert gradient.samples.names == ["sample"]
    assert [c.names for c in gradient.components] == [["xyz_2"], ["xyz_1"], ["o3_mu"]]
    np.testing.assert_array_equal(block.values, plain.block(0).values)


def test_position_gradient_rows_are_the_centre_and_its_neighbours():
    systems = frames("silicon.xyz")
    out = compile(EXAMPLES / "spherical_expansion.mt")(systems, gradients=["positions"])["rho"]
    pairs = mtdsl.neighbors(systems, 5.0)
    neighbours = {}
    for first, second in zip(np.asarray(pairs.first), np.asarray(pairs.second)):
        neighbours.setdefault(int(first), {int(first)}).add(int(second))
    block = out.block(o3_lambda=2)
    gradient = block.gradient("positions")
    rows = gradient.samples.array
    assert gradient.samples.names == ["sample", "system", "atom"]
    assert np.all(np.diff(rows[:, 0] * 1000 + rows[:, 2]) > 0)  # sorted, unique
    for sample, (system, atom) in enumerate(block.samples.array):
        moved = set(rows[rows[:, 0] == sample, 2].tolist())
        assert moved == neighbours[int(atom)]


# ---- gradients that cannot exist -------------------------------------------------------------------


def write(tmp_path, text):
    path = tmp_path / "program.mt"
    path.write_text(text)
    return path


HEADER = """
model program
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
"""


def test_gradient_of_an_output_that_does_not_depend_on_positions_is_a_compile_error(tmp_path):
    path = write(tmp_path, HEADER + """
tensor t
    samples (i)
  = sum(p in P.from(i)) 1.0
output t with gradients(positions)
""")
    # E309, with file, line and column, from compile as from `mtdsl check`
    with pytest.raises(CompileError, match=r"program.mt:\d+:8: error\[E309\]: output t does not depend on the "
                                           r"positions: it has no gradient with respect to positions"):
        compile(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_through_a_where_condition_on_distances_is_branchwise(tmp_path, backend):
    # the condition is piecewise constant: the derivative sums the body's over the pairs it keeps
    path = write(tmp_path, HEADER + """
tensor t
    samples (i)
  = sum(p in P.from(i) where P.distance[p] < 2.0) P.distance[p]^2
output t with gradients(positions, strain)
""")
    assert_matches_finite_differences(compile(path, backend=backend), small_batch(), "t", ["positions", "strain"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_through_a_conditional_on_distances_is_branchwise(tmp_path, backend):
    # d(c ? a : b) = c ? da : db, with comparisons, `and`/`or`/`not` and `%` of moving values
    path = write(tmp_path, HEADER + """
tensor t
    samples (i)
  = sum(p in P.from(i))
      (P.distance[p] < 2.0 and not P.distance[p] > 1.5 ? P.distance[p] : 0.5 * P.distance[p]^2)
    + (P.distance[p] % 0.7) * P.distance[p]
output t with gradients(positions, strain, cell)
""")
    assert_matches_finite_differences(compile(path, backend=backend), small_batch(), "t",
                                      ["positions", "strain", "cell"])


def test_the_same_program_without_the_gradient_compiles(tmp_path):
    path = write(tmp_path, HEADER + """
tensor t
    samples (i)
  = sum(p in P.from(i) where P.distance[p] < 2.0) P.distance[p]
output t
""")
    assert compile(path)(frames("water.xyz"))["t"].block().values.shape[0] == 15


def test_isolated_atoms_have_zero_gradients_on_themselves_only():
    isolated = ase.Atoms("CO", positions=[[0, 0, 0], [20, 0, 0]])
    single = ase.Atoms("Si", positions=[[0, 0, 0]])
    systems = [isolated, single, small_batch()[2]]
    out = compile(EXAMPLES / "soap_power_spectrum.mt")(systems, gradients=["positions", "strain"])["ps"]
    for _, block in out.items():
        for parameter in ("positions", "strain"):
            gradient = block.gradient(parameter)
            parents = block.samples.array[gradient.samples.array[:, 0]]
            alone = parents[:, 0] < 2  # atoms without neighbours
            assert np.all(gradient.values[alone] == 0.0)
            if parameter == "positions":  # a centre's row w.r.t. itself, as featomic
                assert np.all(gradient.samples.array[alone, 2] == parents[alone, 1])
                assert np.all(gradient.samples.array[alone, 1] == parents[alone, 0])


def test_float32_gradients_follow_float64():
    systems = small_batch()
    single = compile(EXAMPLES / "soap_power_spectrum.mt", dtype=np.float32)(systems, gradients=["positions"])["ps"]
    double = compile(EXAMPLES / "soap_power_spectrum.mt")(systems, gradients=["positions"])["ps"]
    scale = max(np.abs(block.gradient("positions").values).max(initial=0.0) for block in double.blocks())
    for key, block in double.items():
        expected = block.gradient("positions").values
        ours = single.block(key).gradient("positions").values
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5 * scale)


# ---- programs beyond the reference ones -------------------------------------------------------------

BUILTINS_PROGRAM = """
model builtins
hyper cutoff = 3.5
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index s : systems(S)
index p : P
index k : range(3)

let w[p, k] = gto(P.distance[p], k, width = 0.8) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor f
    samples (i)
    properties (k)
  = sum(p in P.from(i)) w[p, k] * tanh(norm(P.vector[p])) * exp(-0.1 * dot(P.vector[p], P.vector[p]))
      / sqrt(1.0 + P.distance[p] ^ 2)

tensor e
    samples (s)
    properties (k)
  = sum(i in atoms(S) where S.system[i] == s)
        silu(f[i, k]) * sigmoid(f[i, k]) + log(2.0 + sin(f[i, k]) ^ 2) - abs(f[i, k] - 0.1) + cos(f[i, k])
      + 0.01 * dot(S.positions[i], S.positions[i]) + (k == 1 ? f[i, k] ^ 3 : 0.5 * f[i, k])

output e with gradients(positions, strain, cell)
"""

PAIRS_PROGRAM = """
model pairwise
hyper cutoff = 3.0
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index p : P

tensor bond
    samples (p)
  = exp(-P.distance[p]) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor coord
    samples (i)
  = sum(p in P.from(i)) bond[p] * sum(q in P.from(P.second[p])) bond[q] * P.distance[q]

output coord with gradients(positions, strain, cell)
"""


def test_every_builtin_matches_finite_differences(tmp_path):
    model = compile(write(tmp_path, BUILTINS_PROGRAM))
    assert_matches_finite_differences(model, small_batch(), "e", ["positions", "strain", "cell"])


def test_pair_samples_and_neighbours_of_neighbours_match_finite_differences(tmp_path):
    model = compile(write(tmp_path, PAIRS_PROGRAM))
    assert_matches_finite_differences(model, small_batch(), "coord", ["positions", "strain", "cell"])


def test_sums_over_pairs_stay_sparse():
    from mtdsl.ir import nodes as ir
    from mtdsl.ir.passes.autodiff import differentiate

    module = compile(EXAMPLES / "spherical_expansion.mt").module
    gradient = differentiate(module, "positions")["rho"]
    neighbour, centre = gradient.terms
    # at the neighbour: the pair stays a binder, the centre follows it
    assert [(b.name, b.domain) for b in neighbour.binders] == [("p", ir.PairsDomain("P"))]
    assert dict(neighbour.aliases)["i"] == ir.Data("P", "first", (ir.Var("p"),))
    assert str(neighbour.target) == "P.second[p]"
    # at the centre (P.first[p] is i): a sum over the CSR segment inside the coefficient
    assert centre.binders == () and str(centre.target) == "i"
    assert isinstance(centre.coefficient, ir.Reduce)
    assert centre.coefficient.binders[0].domain == ir.PairsFrom("P", ir.Var("i"))
    strain = differentiate(module, "strain")["rho"]
    assert [(t.binders, str(t.target)) for t in strain.terms] == [((), "S.system[i]")]


MESSAGE_PASSING_PROGRAM = """
model message_passing
hyper cutoff = 3.5
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index k : range(4)

tensor h1
    samples (i)
    properties (k)
  = sum(p in P.from(i)) gto(P.distance[p], k, width = 0.8) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor h2
    samples (i)
    properties (k)
  = sum(p in P.from(i)) tanh(h1[P.second[p], k]) * exp(-P.distance[p]) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor angles
    samples (i)
    properties (k)
  = sum(p in P.from(i), q in P.from(i)) h1[i, k] * exp(-P.distance[p] - P.distance[q])
      * dot(P.vector[p], P.vector[q]) / (P.distance[p] * P.distance[q])

output h2 with gradients(positions, strain)
output angles with gradients(positions, strain)
"""


@pytest.mark.parametrize("output", ["h2", "angles"])
def test_message_passing_and_three_body_terms_match_finite_differences(tmp_path, output):
    model = compile(write(tmp_path, MESSAGE_PASSING_PROGRAM))
    assert_matches_finite_differences(model, small_batch(), output, ["positions", "strain"])


DIPOLE_PROGRAM = """
model dipole
hyper cutoff = 3.0
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index s : systems(S)
index x : xyz

tensor d
    keys (o3_lambda = 1, o3_sigma = 1)
    samples (s)
    components (xyz = x)
  = sum(i in atoms(S) where S.system[i] == s) S.positions[i, x] * (1.0 + sum(p in P.from(i)) exp(-P.distance[p]))

output d with gradients(positions, strain, cell)
"""


def test_positions_read_directly_and_xyz_components(tmp_path):
    model = compile(write(tmp_path, DIPOLE_PROGRAM))
    assert_matches_finite_differences(model, small_batch(), "d", ["positions", "strain", "cell"])
    block = model(small_batch(), gradients=["positions", "strain"])["d"].block()
    # component names must be unique: the gradient's own directions are renamed
    assert [c.names for c in block.gradient("positions").components] == [["xyz_gradient"], ["xyz"]]
    assert [c.names for c in block.gradient("strain").components] == [["xyz_2"], ["xyz_1"], ["xyz"]]


def test_e3nn_convention_matches_finite_differences(tmp_path):
    path = with_gradients(tmp_path, "spherical_expansion.mt", "positions, strain")
    path.write_text(path.read_text().replace("model spherical_expansion\n",
                                             'model spherical_expansion\nconvention sph = "e3nn"\n'))
    model = compile(path, max_angular=3, n_radial=3)
    assert model.module.convention == "e3nn"
    assert_matches_finite_differences(model, small_batch(), "rho", ["positions", "strain"])
