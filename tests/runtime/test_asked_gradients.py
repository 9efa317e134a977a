"""Gradients per output: `model(frames, gradients={"dipole": ["positions"], "charges": []})` beside
the list form, "did you mean" errors, and gradient kernels compiled only when a call asks for them."""

import ase
import numpy as np
import pytest

import mtdsl
from mtdsl.errors import MtdslError

PROGRAM = """
model dipole
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
index s : systems(S)
index m : irrep(1)

let charge[i] = sum(p in P.from(i)) exp(-P.distance[p])

tensor charges
    samples    (i)
  = charge[i]

tensor dipole
    keys       (o3_lambda = 1, o3_sigma = 1)
    samples    (s)
    components (o3_mu = m)
  = sum(i in atoms(S) where S.system[i] == s) charge[i] * to_irrep(S.positions[i], m)

output charges with gradients(positions, strain)
output dipole with gradients(positions, strain)
"""


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("asked") / "dipole.mt"
    path.write_text(PROGRAM)
    return path


def water():
    return [ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])]


@pytest.mark.parametrize("backend", ["interpreter", "cpp", "llvm"])
def test_a_dict_asks_gradients_per_output(path, backend):
    model = mtdsl.compile(path, backend=backend)
    out = model(water(), gradients={"dipole": ["positions"], "charges": []})
    assert out["dipole"].block().gradients_list() == ["positions"]
    assert out["charges"].block().gradients_list() == []
    both = model(water(), gradients=["positions", "strain"])
    assert both["charges"].block().gradients_list() == ["positions", "strain"]
    expected = both["dipole"].block().gradient("positions")
    found = out["dipole"].block().gradient("positions")
    assert found.samples == expected.samples
    np.testing.assert_allclose(found.values, expected.values, rtol=0, atol=1e-12)
    # an output left out gets none
    assert model(water(), gradients={"charges": ["strain"]})["dipole"].block().gradients_list() == []


def test_unknown_names_get_did_you_mean(path):
    model = mtdsl.compile(path)
    with pytest.raises(MtdslError, match=r"unknown output 'dipol' \(did you mean `dipole`\?\)"):
        model(water(), gradients={"dipol": ["positions"]})
    with pytest.raises(MtdslError, match=r"output dipole: unknown gradient 'position' \(did you mean `positions`\?\)"):
        model(water(), gradients={"dipole": ["position"]})
    with pytest.raises(MtdslError, match=r"unknown gradient 'strian' \(did you mean `strain`\?\)"):
        model(water(), gradients=["strian"])
    with pytest.raises(MtdslError, match=r"output charges declares gradients \['positions', 'strain'\]; "
                                         r"cannot compute \['cell'\]"):
        model(water(), gradients={"charges": ["cell"]})


def test_gradient_kernels_are_compiled_only_when_asked(path):
    model = mtdsl.compile(path, backend="cpp")
    model(water())
    assert model._compiled is None and model._compiled_values is not None
    assert not model._compiled_values.term_kernels
    model(water(), gradients={"dipole": ["positions"]})
    assert model._compiled is not None and model._compiled.term_kernels


def test_torch_module_takes_gradients_per_output(path):
    import torch

    module = mtdsl.compile(path, backend="cpp").to_torch()
    atoms = water()[0]
    system = mtdsl.System(torch.tensor(atoms.numbers), torch.tensor(atoms.positions), torch.zeros((3, 3),
                          dtype=torch.float64), torch.zeros(3, dtype=torch.bool))
    out = module([system], gradients={"dipole": ["positions"]})
    assert out["dipole"].block().gradients_list() == ["positions"]
    assert out["charges"].block().gradients_list() == []
    assert module([system], gradients={"charges": []})["charges"].block().gradients_list() == []
    with pytest.raises(MtdslError, match="did you mean `charges`"):
        module([system], gradients={"charge": ["positions"]})
