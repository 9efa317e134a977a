"""Hostile structures (mtdsl.systems.limits) and the final non-finite guard (runtime/finite.py).

The CLI cases run `mtdsl run` in a subprocess under an address-space limit, so that a
regression fails the test (a signal or a MemoryError) instead of eating the machine.
"""

import os
import subprocess
import sys
from pathlib import Path

import ase.build
import numpy as np
import pytest

import mtdsl
from mtdsl.errors import MtdslError
from mtdsl.runtime.finite import NonFiniteError, check_finite
from mtdsl.systems import System, neighbors
from mtdsl.systems.limits import MAX_COORDINATE, UnsafeSystemError, estimated_pairs

PROGRAM = """model hostile

input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)

tensor e
    samples (i)
  = sum(p in P.from(i)) {body}

output e with gradients(positions)
"""

#: run the CLI with at most 3 GiB of address space (python, numpy and ase fit in it)
LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from mtdsl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _xyz(path, positions, cell=None):
    lines = [str(len(positions))]
    lattice = f'Lattice="{" ".join(str(v) for v in np.ravel(cell))}" pbc="T T T" ' if cell is not None else ""
    lines.append(lattice + "Properties=species:S:1:pos:R:3")
    lines += [f"H {x!r} {y!r} {z!r}" for x, y, z in positions]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_cli(tmp_path, structure, body="exp(-P.distance[p])", *extra):
    program = tmp_path / "hostile.mt"
    program.write_text(PROGRAM.format(body=body))
    environment = dict(os.environ)
    environment.pop("MTDSL_MAX_PAIRS", None)
    return subprocess.run(
        [sys.executable, "-c", LIMITED, "run", str(program), str(structure), "-o", str(tmp_path / "out.mts"),
         "--backend", "interpreter", "--gradients", "positions", *extra],
        capture_output=True, text=True, timeout=120, env=environment)


def _one_clear_line(result, *words):
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and "internal error" not in result.stderr, lines
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case, words", [
    ("huge", ["atom 1", "1e+300", "limit"]),
    ("long_molecule", ["too anisotropic"]),  # vesin's cell grid divided by zero: SIGFPE
    ("tiny_cell", ["pairs", "limit", "MTDSL_MAX_PAIRS"]),
    ("same_position", ["atoms 0", "and 1", "0 Å apart"]),
])
def test_cli_refuses_hostile_structures(tmp_path, case, words):
    if case == "huge":
        structure = _xyz(tmp_path / "huge.xyz", [(0.0, 0.0, 0.0), (1e300, 0.0, 0.0)])
    elif case == "long_molecule":
        structure = _xyz(tmp_path / "long.xyz", [(0.0, 0.0, 0.0), (9e5, 0.0, 0.0), (1.0, 1.0, 0.0)])
    elif case == "tiny_cell":
        structure = _xyz(tmp_path / "tiny.xyz", [(0.0, 0.0, 0.0)], np.eye(3) * 0.01)
    else:
        structure = _xyz(tmp_path / "same.xyz", [(1.0, 0.0, 0.0), (1.0, 0.0, 0.0)])
    line = _one_clear_line(_run_cli(tmp_path, structure), *words)
    assert f"frame {structure}:0" in line  # the frame, by its source
    assert not (tmp_path / "out.mts").exists()


def test_cli_refuses_nan_outputs_unless_allowed(tmp_path):
    structure = _xyz(tmp_path / "ok.xyz", [(0.0, 0.0, 0.0), (0.7, 0.0, 0.0)])
    line = _one_clear_line(_run_cli(tmp_path, structure, "log(P.distance[p] - 1.0)"),
                           "output e", "ok.xyz:0", "atom 0", "nan")
    assert "MTDSL_ALLOW_NONFINITE" in line
    result = _run_cli(tmp_path, structure, "log(P.distance[p] - 1.0)", "--allow-nonfinite")
    assert result.returncode == 0, result.stderr
    assert np.isnan(mtdsl.load(tmp_path / "out.mts").block(0).values).all()


def test_cli_max_pairs_lifts_and_lowers_the_limit(tmp_path):
    structure = _xyz(tmp_path / "small.xyz", [(0.0, 0.0, 0.0), (1.1, 0.4, 0.3)], np.eye(3) * 2.5)
    _one_clear_line(_run_cli(tmp_path, structure, "exp(-P.distance[p])", "--max-pairs", "10"), "limit of 10")
    assert _run_cli(tmp_path, structure, "exp(-P.distance[p])", "--max-pairs", "1000").returncode == 0


# -- the checks, one by one ----------------------------------------------------------------------


def test_coordinates_beyond_the_bound():
    far = System([1, 1], [[0.0, 0, 0], [0, 2 * MAX_COORDINATE, 0]], source="far.xyz:4")
    with pytest.raises(UnsafeSystemError, match=r"frame far.xyz:4: atom 1 .* \(y\), beyond the limit"):
        neighbors(far, 3.0)
    cell = np.eye(3) * 3.0
    cell[2, 2] = 5 * MAX_COORDINATE
    with pytest.raises(UnsafeSystemError, match="cell vector c"):
        neighbors(System([1], [[0.0, 0, 0]], cell, True), 3.0)
    with pytest.raises(UnsafeSystemError, match=r"cutoff 1e\+300 Å is outside"):
        neighbors(System([1], [[0.0, 0, 0]]), 1e300)


def test_degenerate_cell():
    cell = np.array([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 1e-8]])
    with pytest.raises(UnsafeSystemError, match="degenerate"):
        neighbors(System([1], [[0.0, 0, 0]], cell, True), 2.0)


def test_pair_limit_counts_periodic_images(monkeypatch):
    crystal = System.from_ase(ase.build.bulk("Cu", cubic=True))
    exact = len(neighbors(crystal, 6.0))
    assert 0.5 * exact < estimated_pairs(crystal.positions, crystal.cell, crystal.pbc, 6.0) < 2 * exact
    with pytest.raises(UnsafeSystemError, match="limit of 100"):
        neighbors(crystal, 6.0, max_pairs=100)
    monkeypatch.setenv("MTDSL_MAX_PAIRS", "100")
    with pytest.raises(UnsafeSystemError, match="MTDSL_MAX_PAIRS"):
        neighbors(crystal, 6.0)
    assert len(neighbors(crystal, 6.0, max_pairs=10 * exact)) == exact


def test_batch_total_is_limited():
    molecule = System.from_ase(ase.build.molecule("C6H6"))
    single = len(neighbors(molecule, 5.0))
    with pytest.raises(UnsafeSystemError, match="the batch of 20 frames"):
        neighbors([molecule] * 20, 5.0, max_pairs=10 * single)


def test_overlapping_atoms_are_named(monkeypatch):
    positions = [[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [1.0, 0, 0.0005]]
    with pytest.raises(UnsafeSystemError, match=r"atoms 1 \(Z=6\) and 3 \(Z=8\) are 0.0005 Å apart"):
        neighbors([System([1, 1], [[0.0, 0, 0], [1, 0, 0]]), System([1, 6, 1, 8], positions)], 3.0)
    monkeypatch.setenv("MTDSL_MIN_DISTANCE", "0")
    assert len(neighbors(System([1, 6, 1, 8], positions), 3.0)) == 12
    monkeypatch.setenv("MTDSL_MIN_DISTANCE", "0.01")
    with pytest.raises(UnsafeSystemError, match="limit of 0.01 Å"):
        neighbors(System([1, 6, 1, 8], positions), 3.0)


def test_an_atom_on_its_own_image():
    cell = np.diag([3.0, 3.0, 1e-4])
    with pytest.raises(MtdslError, match="atoms 0 .* and 0 .*periodic image"):
        neighbors(System([1], [[0.0, 0, 0]], cell, True), 2.0, max_pairs=10**9)


def test_final_guard_names_output_block_frame_and_atom(tmp_path):
    program = tmp_path / "nan.mt"
    program.write_text(PROGRAM.format(body="log(P.distance[p] - 1.0)"))
    model = mtdsl.compile(program)
    frames = [System([1, 1], [[0.0, 0, 0], [3.5, 0, 0]], source="a.xyz:0"),
              System([1, 1, 1], [[0.0, 0, 0], [2.0, 0, 0], [2.5, 0, 0]], source="b.xyz:7")]
    with pytest.raises(NonFiniteError, match=r"output e, block \(_=0\): nan at frame b.xyz:7, atom 1"):
        model(frames)
    model.check_finite = False
    assert np.isnan(model(frames)["e"].block(0).values).any()


def test_final_guard_reads_gradient_rows():
    from mtdsl.tensor import Labels, TensorBlock, TensorMap

    block = TensorBlock(np.ones((2, 1)), Labels(["system", "atom"], np.array([[0, 0], [1, 0]], np.int32)), [],
                        Labels(["n"], np.array([[0]], np.int32)))
    gradient = np.zeros((2, 3, 1))
    gradient[1, 2, 0] = np.inf
    block.add_gradient("positions", TensorBlock(
        gradient, Labels(["sample", "system", "atom"], np.array([[0, 0, 0], [1, 1, 4]], np.int32)),
        [Labels(["xyz"], np.arange(3, dtype=np.int32).reshape(-1, 1))], block.properties))
    tensor = TensorMap(Labels(["k"], np.array([[5]], np.int32)), [block])
    with pytest.raises(NonFiniteError, match=r"output y, block \(k=5\), gradient positions: inf at frame "
                                             r"w.xyz:1, atom 4"):
        check_finite({"y": tensor}, ["w.xyz:0", "w.xyz:1"])
