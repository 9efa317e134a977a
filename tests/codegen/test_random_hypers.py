"""The reference `.mt` programs with random hypers, on random systems: every backend equals the interpreter."""

import pathlib

import numpy as np
import pytest

import mtdsl
from mtdsl.testing import random_inputs, random_systems
from tests.codegen.test_backends import assert_same

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def random_hypers(program: str, rng) -> dict:
    if program == "equivariant_convolution.mt":
        return {"lmax": int(rng.integers(0, 4)), "width": int(rng.integers(1, 9)),
                "cutoff": float(rng.uniform(3.0, 5.0))}
    return {"n_radial": int(rng.integers(1, 6)), "max_angular": int(rng.integers(0, 6)),
            "cutoff": float(rng.uniform(3.0, 5.5)), "atomic_width": float(rng.uniform(0.2, 0.6))}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("program", ["spherical_expansion.mt", "soap_power_spectrum.mt", "soap_energy.mt",
                                     "equivariant_convolution.mt"])
@pytest.mark.parametrize("backend", ["cpp", "llvm"])
def test_random_hypers_equal_the_interpreter(backend, program, seed):
    rng = np.random.default_rng(seed + 17 * len(program))
    hypers = random_hypers(program, rng)
    species = [1, 6, 8]
    systems = random_systems(species, n_systems=3, seed=seed)
    models = {name: mtdsl.compile(EXAMPLES / program, backend=name, species=species, seed=seed, **hypers)
              for name in ("interpreter", backend)}
    parameters = {name: rng.normal(size=values.shape) for name, values in models["interpreter"].parameters.items()}
    for model in models.values():
        model.parameters.update(parameters)
    inputs = random_inputs(models["interpreter"].module, systems, seed=seed)
    assert_same(models[backend](systems, **inputs), models["interpreter"](systems, **inputs), np.float64)
    native = models[backend].compiled
    assert native.fallbacks == {} and native.last_run_fallbacks == {}  # every kernel ran natively
