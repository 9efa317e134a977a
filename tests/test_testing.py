"""mtdsl.testing.assert_equivariant on the reference programs, and on a model that is not equivariant."""

import pathlib

import numpy as np
import pytest

import mtdsl
from mtdsl.testing import EquivarianceError, assert_equivariant, random_systems
from tests.runtime.test_programs import features_for

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("program", ["spherical_expansion.mt", "soap_power_spectrum.mt"])
def test_reference_programs_are_equivariant(program):
    model = mtdsl.compile(EXAMPLES / program, n_radial=3, max_angular=3)
    assert_equivariant(model, random_systems(seed=1))


def test_energy_is_invariant():
    model = mtdsl.compile(EXAMPLES / "soap_energy.mt", species=[1, 6, 8], n_radial=3, max_angular=2)
    rng = np.random.default_rng(0)
    for name, values in model.parameters.items():
        model.parameters[name] = rng.normal(size=values.shape)
    assert_equivariant(model, random_systems(seed=2))


def test_convolution_is_equivariant_with_rotated_inputs():
    model = mtdsl.compile(EXAMPLES / "equivariant_convolution.mt")
    systems = random_systems(seed=3)
    h = features_for([s.to_ase() for s in systems])
    assert_equivariant(model, systems, h=h)


class PositionReader:
    """A 'model' whose invariant output is an absolute coordinate: not equivariant."""

    def __init__(self):
        self.module = None

    def __call__(self, frames, **inputs):
        batch = mtdsl.SystemBatch(frames)
        x = np.asarray(batch.positions)[:, :1]
        block = mtdsl.TensorBlock(x, mtdsl.Labels(["atom"], np.arange(len(x)).reshape(-1, 1)), [],
                                  mtdsl.Labels.range("x", 1))
        return {"x": mtdsl.TensorMap(mtdsl.Labels.single(), [block])}


def test_a_coordinate_is_not_invariant():
    with pytest.raises(EquivarianceError, match=r"output x, block \(_=0\) is not equivariant under rotation"):
        assert_equivariant(PositionReader(), random_systems(seed=4))
