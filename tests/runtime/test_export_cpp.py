"""The exported model's C++ operator (runtime/export/cpp.py, runtime/export/tape.py,
codegen/torch_op.py): metatomic's ASE calculator in a Python where mtdsl cannot be imported
equals `as_calculator()`; programs whose kernel calls need the Python runtime are refused by name
(`runtime="cpp"`, `mtdsl export --runtime cpp`) or exported with the Python-hosted operator
and a warning (`runtime="auto"`)."""

import hashlib
import json
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import mtdsl
from mtdsl._coexist import import_module_with_metatensor_torch
from mtdsl.runtime.export.atomistic import ExportError, ExportWarning
from tests.runtime._helpers import run_without_mtdsl, sheared_alloy, spaced_cluster

from .engine import run_engine

import_module_with_metatensor_torch("metatomic.torch")

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPECIES = [29, 47, 79]


def lennard_jones():
    """examples/lennard_jones.mt over a half list (the operator orients the engine's full list)."""
    return mtdsl.compile(HERE / "programs" / "lennard_jones_half.mt", species=SPECIES, threads=1, sigma=1.1,
                         epsilon=0.7, cutoff=3.2, onset=2.4)


def molecule():
    return spaced_cluster(SPECIES, 7, half_width=2.2, min_distance=1.0)


def crystal():
    return sheared_alloy(a=3.1)


SYSTEMS = {"molecule": molecule, "crystal": crystal}

# the engine (run_without_mtdsl: the model runs its C++ operator)
ENGINE = """
import ase.io, numpy as np
from metatomic_ase import MetatomicCalculator
directory = sys.argv[1]
results = {}
for name in ("molecule", "crystal"):
    atoms = ase.io.read(f"{directory}/{name}.xyz")
    atoms.calc = MetatomicCalculator(f"{directory}/model.pt", extensions_directory=f"{directory}/extensions")
    stress = atoms.get_stress().tolist() if atoms.pbc.all() else []
    results[name] = [float(atoms.get_potential_energy()), atoms.get_forces().tolist(), stress]
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The model exported once with its C++ operator (one build per module)."""
    directory = tmp_path_factory.mktemp("cpp")
    model = lennard_jones()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)  # the C++ operator, not the fallback
        model.export(directory / "model.pt", extensions_directory=directory / "extensions", runtime="cpp")
    for name, make in SYSTEMS.items():
        make().write(directory / f"{name}.xyz")
    return directory, model


def _cache_entry(library: pathlib.Path) -> pathlib.Path:
    """The kernel-cache entry the extension was copied from (its sidecar records its sha256)."""
    from mtdsl.codegen import cache

    digest = hashlib.sha256(library.read_bytes()).hexdigest()
    for sidecar in cache.cache_dir().glob("*.json"):
        try:
            if json.loads(sidecar.read_text()).get("sha256") == digest:
                return sidecar.with_suffix(".so")
        except (ValueError, AttributeError):
            continue
    raise AssertionError(f"no kernel-cache entry holds {library.name}")


def test_cpp_operator_without_mtdsl_equals_as_calculator(exported):
    """A damaged cache entry of the operator library is rebuilt, never served; then the engine, in a
    Python without mtdsl, equals `as_calculator()` on a molecule and a periodic cell."""
    from mtdsl.codegen.cache import CacheWarning

    directory, model = exported
    libraries = sorted((directory / "extensions").iterdir())
    assert len(libraries) == 1 and libraries[0].name.startswith("mtdsl_") and libraries[0].name != "mtdsl_export.so"
    entry = _cache_entry(libraries[0])
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="damaged"):
        model.export(directory / "model.pt", extensions_directory=directory / "extensions", runtime="cpp")
    assert _cache_entry(libraries[0]) == entry  # rebuilt whole, the extension its copy
    results = run_without_mtdsl(ENGINE, str(directory), directory)
    for name, (energy, forces, stress) in results.items():
        atoms = SYSTEMS[name]()
        atoms.calc = model.as_calculator()
        expected = atoms.get_potential_energy()
        assert abs(expected) > 1e-3
        assert abs(energy - expected) <= 1e-8 * max(1.0, abs(expected)), name
        assert np.abs(atoms.get_forces()).max() > 1e-3
        np.testing.assert_allclose(forces, atoms.get_forces(), rtol=0, atol=1e-7, err_msg=name)
        if stress:
            np.testing.assert_allclose(stress, atoms.get_stress(), rtol=0, atol=1e-7, err_msg=name)


REFUSED = HERE / "programs" / "rho_energy.mt"  # its reverse product reads rho's materialized gradient rows
REFUSED_HYPERS = {"n_radial": 2, "max_angular": 1, "cutoff": 3.0}


def test_programs_needing_the_python_runtime_are_refused_by_name(tmp_path):
    model = mtdsl.compile(REFUSED, species=SPECIES, threads=1, **REFUSED_HYPERS)
    with pytest.raises(ExportError, match=r"C\+\+ operator: kernel \S+ reads the rows of a materialized gradient"):
        model.export(tmp_path / "model.pt", extensions_directory=tmp_path / "extensions", runtime="cpp")
    with pytest.warns(ExportWarning, match="Python-hosted operator"):
        model.export(tmp_path / "model.pt", extensions_directory=tmp_path / "extensions")
    assert (tmp_path / "extensions" / "mtdsl_export.so").exists()


def test_cli_refusal_is_one_line_and_the_fallback_says_so(tmp_path):
    hypers = [value for name, v in REFUSED_HYPERS.items() for value in ("--set", f"{name}={v}")]
    done = subprocess.run([sys.executable, "-m", "mtdsl.cli", "export", str(REFUSED), *hypers,
                           "--species", "29,47,79", "-o", str(tmp_path / "model.pt"), "--runtime", "cpp",
                           "--extensions-directory", str(tmp_path / "extensions")],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "kernel" in done.stderr, done.stderr
    assert not (tmp_path / "model.pt").exists()
    done = subprocess.run(done.args[:-4] + ["--runtime", "auto"] + done.args[-2:], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "mtdsl export: exported with the Python-hosted operator" in done.stderr
    assert (tmp_path / "model.pt").exists() and (tmp_path / "extensions" / "mtdsl_export.so").exists()


def test_a_cpp_engine_without_python_runs_the_model(exported):
    """The strongest proof: a C++ program (no Python at all) loads the .pt and its extension with
    metatomic-torch's `load_atomistic_model`, and its energy and autograd forces equal
    `as_calculator()`'s."""
    directory, model = exported
    atoms = molecule()
    energy, forces = run_engine(directory / "model.pt", directory / "extensions", atoms)
    atoms.calc = model.as_calculator()
    expected = atoms.get_potential_energy()
    assert abs(expected) > 1e-3
    assert abs(energy - expected) <= 1e-8 * max(1.0, abs(expected))
    np.testing.assert_allclose(forces, atoms.get_forces(), rtol=0, atol=1e-7)
