"""One real Dask LocalCluster (2 single-threaded worker processes) for the whole directory:
starting one costs about a second, so the tests share it."""

import os

import numpy as np
import pytest

import mtdsl

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
#: small hypers: the tests compare runs, the sizes do not matter
SMALL = dict(cutoff=3.5, n_radial=3, max_angular=2)


@pytest.fixture(scope="session")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


def compile_example(name: str, **extra):
    """An example program, its parameters drawn at random (zeros would hide wrong sums)."""
    hypers = dict(SMALL) if name != "equivariant_convolution" else dict(cutoff=3.5, lmax=2, width=4)
    model = mtdsl.compile(os.path.join(EXAMPLES, f"{name}.mt"), **hypers, **extra)
    rng = np.random.default_rng(7)
    for key, value in model.parameters.items():
        model.parameters[key] = rng.normal(size=value.shape)
    return model


def assert_same(expected: dict, found: dict, rtol: float = 0.0, gradient_rtol: float | None = None):
    """Same outputs: keys, samples, components, properties, values and gradient blocks (values
    within `rtol` relative to the block's largest entry; 0: bit for bit)."""
    gradient_rtol = rtol if gradient_rtol is None else gradient_rtol
    assert list(expected) == list(found)
    for name in expected:
        a, b = expected[name], found[name]
        assert a.keys == b.keys, name
        for key, block_a in a.items():
            block_b = b.block(key)
            where = f"{name} {tuple(key)}"
            assert block_a.samples == block_b.samples, where
            assert block_a.components == block_b.components, where
            assert block_a.properties == block_b.properties, where
            _close(block_a.values, block_b.values, rtol, where)
            assert block_a.gradients_list() == block_b.gradients_list(), where
            for parameter in block_a.gradients_list():
                ga, gb = block_a.gradient(parameter), block_b.gradient(parameter)
                assert ga.samples == gb.samples, f"{where} d/d{parameter}"
                assert ga.components == gb.components
                _close(ga.values, gb.values, gradient_rtol, f"{where} d/d{parameter}")


def _close(a, b, rtol, where):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, where
    if rtol == 0.0:
        assert np.array_equal(a, b), where
    else:
        scale = max(float(np.abs(a).max()) if a.size else 0.0, 1e-300)
        assert np.abs(a - b).max(initial=0.0) <= rtol * scale, f"{where}: {np.abs(a - b).max() / scale:.2e}"
