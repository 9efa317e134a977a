"""The threaded path over blocks gives the same results as the sequential one."""

import numpy as np
from hypothesis import given

import mtdsl.ops as ops
import mtdsl.ops._parallel as parallel
from mtdsl import Labels
from tests.strategies import tensormaps

from ._reference import SETTINGS, redraw


@SETTINGS
@given(tensor=tensormaps(min_samples=1))
def test_threaded_equals_sequential(tensor):
    other = redraw(tensor, 1, shift=3.0)
    selection = Labels(["system"], np.array([[0], [2]]))

    def run():
        return [
            ops.add(tensor, other),
            ops.multiply(tensor, other),
            ops.divide(tensor, 2.0),
            ops.abs(tensor),
            ops.sum_over_samples(tensor, "atom"),
            ops.std_over_properties(tensor, "n"),
            ops.slice(tensor, "samples", selection),
            *ops.split(tensor, "samples", [selection]),
            ops.join([tensor, other], "samples", add_dimension="t"),
        ]

    sequential = run()
    saved_size, saved_threads = parallel.MIN_PARALLEL_SIZE, parallel.num_threads
    parallel.MIN_PARALLEL_SIZE, parallel.num_threads = 0, lambda: 2
    try:
        threaded = run()
    finally:
        parallel.MIN_PARALLEL_SIZE, parallel.num_threads = saved_size, saved_threads
    for a, b in zip(sequential, threaded):
        assert ops.equal(a, b)
