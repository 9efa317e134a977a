"""Structural sparsity (LANGUAGE.md §3, runtime/presence.py): each presence rule on small
programs, on every backend and through the torch module; the dense option.

(featomic parity of the examples' keys and samples: tests/runtime/test_programs.py.)
"""

import ase
import numpy as np
import pytest

from mtdsl.codegen.schedule import abi
from mtdsl.compile import compile
from mtdsl.ir.roles import PresenceTable

BACKENDS = ["interpreter", "cpp", "llvm"]

PROGRAM = """
hyper cutoff = 2.0
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index b : species(S)

# present where i has a neighbour of type b: a sum over an empty set is absent
tensor count
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
  = sum(p in P.from(i) where S.type[P.second[p]] == b) 1.0

# + of an absent and a present operand is the present one; a product with an absent factor is absent
tensor plus
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
  = count{center_type = S.type[i], neighbor_type = b}[i] + sum(j in atoms(S) where j == i and S.type[j] == b) 0.0

tensor times
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
  = 2.0 * count{center_type = S.type[i], neighbor_type = b}[i] * exp(-dot(S.positions[i], S.positions[i]))

# ?: takes the presence of the branch taken
tensor branch
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
  = S.type[i] == 1 ? 5.0 : count{center_type = S.type[i], neighbor_type = b}[i]

output count
output plus
output times
output branch
"""


def frames():
    """H2 (close), an O far from a C, and a lonely N: O and C have no neighbours at all."""
    return [ase.Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]]),
            ase.Atoms("OC", positions=[[0, 0, 0], [5, 0, 0]]),
            ase.Atoms("N", positions=[[0, 0, 0]])]


def entries(tensor) -> set:
    """{(key..., sample...)} of a TensorMap."""
    return {tuple(int(v) for v in key.values) + tuple(int(v) for v in row)
            for key, block in tensor.items() for row in block.samples.array}


@pytest.mark.parametrize("backend", BACKENDS)
def test_presence_rules(tmp_path, backend):
    path = tmp_path / "rules.mt"
    path.write_text(PROGRAM)
    out = compile(path, backend=backend)(frames())
    # only the H's have neighbours (each other): one block, both H's
    assert entries(out["count"]) == {(1, 1, 0, 0), (1, 1, 0, 1)}
    np.testing.assert_array_equal(out["count"].block(0).values, [[1.0], [1.0]])
    # the sum over the atom itself is present where the types are equal: every atom in its own
    # type's block, present zeros included (O, C and N have no neighbour but a present 0.0)
    assert entries(out["plus"]) == {(1, 1, 0, 0), (1, 1, 0, 1), (8, 8, 1, 0), (6, 6, 1, 1), (7, 7, 2, 0)}
    assert np.all(out["plus"].block(center_type=8, neighbor_type=8).values == 0.0)
    assert entries(out["times"]) == entries(out["count"])
    # H takes the literal branch for every neighbour type b, the others the (absent) count
    assert entries(out["branch"]) == {(1, b, 0, a) for b in (1, 6, 7, 8) for a in (0, 1)}


@pytest.mark.parametrize("backend", ["interpreter", "cpp"])
def test_dense_option(tmp_path, backend):
    path = tmp_path / "rules.mt"
    path.write_text(PROGRAM)
    dense = compile(path, backend=backend, dense=True)(frames())["count"]
    assert len(dense) == 4 * 4  # every (centre type, neighbour type) of the batch
    assert sum(len(block.samples) for block in dense.blocks()) == 5 * 4
    sparse = compile(path, backend=backend)(frames())["count"]
    assert entries(sparse) < entries(dense)


def test_gradient_rows_follow_the_kept_samples(tmp_path):
    """Gradient rows of dropped samples go, the others point at the renumbered samples."""
    program = PROGRAM.replace("output times", "output times with gradients(positions)")
    path = tmp_path / "rules.mt"
    path.write_text(program)
    model = compile(path, backend="cpp")
    out = model(frames(), gradients={"times": ["positions"]})["times"]
    dense = compile(path, backend="cpp", dense=True)(frames(), gradients={"times": ["positions"]})["times"]
    block, full = out.block(0), dense.block(center_type=1, neighbor_type=1)
    gradient, full_gradient = block.gradient("positions"), full.gradient("positions")
    kept = full.samples.positions(block.samples.array)
    for row, sample in enumerate(gradient.samples.array):
        match = np.nonzero((full_gradient.samples.array[:, 0] == kept[sample[0]])
                           & np.all(full_gradient.samples.array[:, 1:] == sample[1:], axis=1))[0]
        np.testing.assert_array_equal(gradient.values[row], full_gradient.values[match[0]])


def test_torch_module_keeps_the_present_blocks_and_samples(tmp_path):
    import torch

    import mtdsl

    path = tmp_path / "rules.mt"
    path.write_text(PROGRAM.replace("output times", "output times with gradients(positions)"))
    model = compile(path, backend="cpp")
    systems = [mtdsl.System(torch.tensor(atoms.numbers), torch.tensor(atoms.positions), torch.tensor(atoms.cell.array),
                            torch.tensor(atoms.pbc)) for atoms in frames()]
    for gradients in ({}, {"times": ["positions"]}):
        expected = model(frames(), gradients=gradients)
        found = model.to_torch()(systems, gradients=gradients)
        for name, tensor in expected.items():
            assert entries(found[name]) == entries(tensor)
            for a, b in zip(tensor.blocks(), found[name].blocks()):
                np.testing.assert_allclose(a.values, b.values.detach().numpy(), rtol=1e-12)
                if gradients and name == "times":
                    assert a.gradient("positions").samples == b.gradient("positions").samples
                    np.testing.assert_allclose(a.gradient("positions").values,
                                               b.gradient("positions").values.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_rows_are_laid_out_on_the_present_samples(tmp_path, backend, monkeypatch):
    """With gradients, the intermediate `count` is assembled on its present blocks and the
    terms skip the points of absent entries: before `restrict()`, the output's gradient rows all
    belong to present samples (none to drop), and the values and rows are the dense run's."""
    from mtdsl.runtime import model as model_module
    from mtdsl.runtime.presence import restrict

    program = PROGRAM.replace("output times", "output times with gradients(positions)")
    path = tmp_path / "rules.mt"
    path.write_text(program)
    seen = []

    def checked(tensor, present):
        if len(tensor) and tensor.block(0).gradients_list():
            found = present.key_positions(np.asarray(tensor.keys.array))
            assert np.all(found >= 0)  # present blocks only
            for b, block in enumerate(tensor.blocks()):
                parents = np.asarray(block.gradient("positions").samples.array)[:, 0]
                kept = present.sample_mask(found[b], np.asarray(block.samples.array))
                assert np.all(kept[parents]), "a gradient row of an absent sample"
            seen.append(tensor)
        return restrict(tensor, present)

    monkeypatch.setattr(model_module, "restrict", checked)
    systems = frames() + [ase.Atoms("OCH", positions=[[0, 0, 0], [1.2, 0, 0], [0, 1.0, 0]])]
    out = compile(path, backend=backend)(systems, gradients={"times": ["positions"]})["times"]
    assert seen
    dense = compile(path, backend=backend, dense=True)(systems, gradients={"times": ["positions"]})["times"]
    for key, block in out.items():
        full = dense.block(key)
        rows = full.samples.positions(block.samples.array)
        np.testing.assert_array_equal(block.values, full.values[rows])
        gradient, full_gradient = block.gradient("positions"), full.gradient("positions")
        for row, sample in enumerate(gradient.samples.array):
            match = np.nonzero((full_gradient.samples.array[:, 0] == rows[sample[0]])
                               & np.all(full_gradient.samples.array[:, 1:] == sample[1:], axis=1))[0]
            np.testing.assert_allclose(gradient.values[row], full_gradient.values[match[0]], rtol=1e-12, atol=0)
        # every non-zero row of the dense run's present samples is there
        present_rows = np.isin(full_gradient.samples.array[:, 0], rows)
        nonzero = np.abs(np.asarray(full_gradient.values)).reshape(len(present_rows), -1).max(axis=1) > 0
        assert np.count_nonzero(present_rows & nonzero) <= len(gradient.samples)


@pytest.mark.parametrize("backend", ["cpp", "llvm"])
def test_values_kernels_skip_absent_points(tmp_path, backend):
    """A kernel reading a tensor by block access is rendered with its presence guard
    (codegen/schedule/presence.py): its absent points are never computed. `1 / count` computed
    at an absent point would be 1 / 0 = inf in the dense buffer (as `dense=True`, which passes no
    presence table, shows); skipped, the buffer holds 0 there. The outputs are the same."""
    program = PROGRAM.replace("output count", """tensor inverse
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
  = 1.0 / count{center_type = S.type[i], neighbor_type = b}[i]

output count
output inverse""")
    path = tmp_path / "rules.mt"
    path.write_text(program)
    systems = frames() + [ase.Atoms("OCH", positions=[[0, 0, 0], [1.2, 0, 0], [0, 1.0, 0]])]
    buffers = {}
    for dense in (False, True):
        model = compile(path, backend=backend, dense=dense)
        model.check_finite = False  # the dense run keeps its absent entries: inf
        out = model(systems)["inverse"]
        compiled = model._compiled_values
        assert "inverse" not in compiled.last_run_fallbacks
        assert abi.Presence(PresenceTable("inverse")) in compiled.kernels["inverse"].rendered.arrays
        buffers[dense] = compiled._arguments.grids["inverse"]
        if not dense:
            assert entries(out) == entries(model(systems)["count"])
            assert all(np.all(block.values == 1.0) for block in out.blocks())
    assert np.isinf(buffers[True]).any()
    assert np.all(np.isfinite(buffers[False]))
    np.testing.assert_array_equal(buffers[False][np.isfinite(buffers[True])], buffers[True][np.isfinite(buffers[True])])


@pytest.mark.parametrize("backend", ["cpp", "llvm"])
def test_fused_values_skip_absent_points(tmp_path, backend):
    """The values of a fused kernel (its pass over pairs shared with the gradient terms that join it,
    codegen/schedule/fuse.py) carry the presence guard too (schedule/presence.py: guarded_plan): `1 / count`
    inside a pair sum is never computed where `count` is absent (the buffer is finite, inf with
    dense=True), and values and gradients equal the interpreter's."""
    program = PROGRAM.split("# + of an absent")[0] + """
tensor inverse
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
  = sum(q in P.from(i)) exp(-P.distance[q]) / count{center_type = S.type[i], neighbor_type = b}[i]

output inverse with gradients(positions)
"""
    path = tmp_path / "fused.mt"
    path.write_text(program)
    systems = frames() + [ase.Atoms("OCH", positions=[[0, 0, 0], [1.2, 0, 0], [0, 1.0, 0]])]
    buffers = {}
    for dense in (False, True):
        model = compile(path, backend=backend, dense=dense)
        model.check_finite = False  # the dense run keeps its absent entries: inf
        out = model(systems, gradients=["positions"])["inverse"]
        compiled = model.compiled
        assert compiled.last_gradient_terms[("inverse", "positions", 0)] == "fused"
        (fused,) = compiled.fused_kernels.values()
        assert abi.Presence(PresenceTable("inverse")) in fused.rendered.arrays
        buffers[dense] = compiled._arguments.grids["inverse"]
    assert np.isinf(buffers[True]).any()
    assert np.all(np.isfinite(buffers[False]))
    with np.errstate(divide="ignore", invalid="ignore"):
        reference = compile(path, backend="interpreter")(systems, gradients=["positions"])["inverse"]
    out = compile(path, backend=backend)(systems, gradients=["positions"])["inverse"]
    assert entries(out) == entries(reference)
    for (key, block), (_, expected) in zip(out.items(), reference.items()):
        np.testing.assert_allclose(block.values, expected.values, rtol=1e-12)
        gradient, expected_gradient = block.gradient("positions"), expected.gradient("positions")
        np.testing.assert_array_equal(gradient.samples.array, expected_gradient.samples.array)
        np.testing.assert_allclose(gradient.values, expected_gradient.values, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", ["cpp", "llvm"])
def test_native_kernels_read_absent_blocks(tmp_path, backend):
    """A compiled kernel reading a block or sample its tensor lacks reads *absent* (0, as the
    evaluator reads it): the run is no error under structural sparsity (runtime/native/block_lookup.py:
    error_bits), so a sum over species of a per-species density (an energy over the power spectrum)
    runs natively, values and gradients, and equals the interpreter."""
    program = """
hyper cutoff = 2.0
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index b, b1, b2 : species(S)

tensor density
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
  = sum(p in P.from(i) where S.type[P.second[p]] == b) exp(-P.distance[p])

# as the power spectrum: a `where`, so read through its blocks' lookup tables (not as a grid)
tensor meeting
    keys       (center_type = S.type[i], neighbor_1_type = b1, neighbor_2_type = b2)
    samples    (i)
    where b1 <= b2
  = density{center_type = S.type[i], neighbor_type = b1}[i] * density{center_type = S.type[i], neighbor_type = b2}[i]

tensor total
    samples    (i)
  = 1.0 + sum(b1, b2 where b1 <= b2)
            meeting{center_type = S.type[i], neighbor_1_type = b1, neighbor_2_type = b2}[i]

output total with gradients(positions)
"""
    path = tmp_path / "absent.mt"
    path.write_text(program)
    systems = frames() + [ase.Atoms("OCH", positions=[[0, 0, 0], [1.2, 0, 0], [0, 1.0, 0]])]
    model = compile(path, backend=backend)
    values = model(systems)["total"]
    assert "total" not in model._compiled_values.last_run_fallbacks
    out = model(systems, gradients=["positions"])["total"]
    assert not model.compiled.last_run_fallbacks
    reference = compile(path, backend="interpreter")(systems, gradients=["positions"])["total"]
    for tensor in (values, out):
        np.testing.assert_allclose(tensor.block().values, reference.block().values, rtol=1e-12)
    gradient, expected = out.block().gradient("positions"), reference.block().gradient("positions")
    np.testing.assert_array_equal(gradient.samples.array, expected.samples.array)
    np.testing.assert_allclose(gradient.values, expected.values, rtol=1e-12, atol=1e-14)
