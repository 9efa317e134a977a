"""Results that agree with metatensor-operations to the last bit (same summation order), and
metadata checks that stay on for names when the entry checks are disabled."""

from __future__ import annotations

import metatensor.operations as mto
import numpy as np
import pytest

from mtdsl import Labels, TensorBlock, TensorMap, ops


def grouped_tensor(n_samples: int = 300, n_systems: int = 7, seed: int = 3) -> TensorMap:
    """Samples of uneven group sizes, in shuffled order, with positions gradients."""
    rng = np.random.default_rng(seed)
    systems = np.sort(rng.integers(0, n_systems, n_samples))
    rows = np.stack([systems, np.arange(n_samples)], axis=1)[rng.permutation(n_samples)]
    properties = Labels(["l", "n"], np.array([[l, n] for l in range(3) for n in range(5)])[rng.permutation(15)])
    block = TensorBlock(rng.standard_normal((n_samples, 3, 15)) * 10.0 ** rng.integers(-3, 4, (n_samples, 1, 1)),
                        Labels(["system", "atom"], rows), [Labels.range("o3_mu", 3)], properties)
    gradient_rows = np.array([[s, rows[s, 0], a] for s in range(n_samples) for a in (0, 1)])
    block.add_gradient("positions", TensorBlock(
        rng.standard_normal((len(gradient_rows), 3, 3, 15)), Labels(["sample", "system", "atom"], gradient_rows),
        [Labels.range("xyz", 3), Labels.range("o3_mu", 3)], properties))
    return TensorMap(Labels.single(), [block])


@pytest.mark.parametrize("reduction", ["sum", "mean", "var", "std"])
@pytest.mark.parametrize("axis, names", [("samples", "atom"), ("samples", ["system", "atom"]),
                                         ("properties", "n"), ("properties", ["l", "n"])])
def test_reductions_equal_metatensor_to_the_last_bit(reduction, axis, names):
    ours = grouped_tensor()
    if axis == "properties" and reduction in ("var", "std"):
        ours = ops.remove_gradients(ours)  # metatensor-operations 0.5.0 fails on these gradients with components
    theirs = ours.to_metatensor()
    function = f"{reduction}_over_{axis}"
    result = getattr(ops, function)(ours, names)
    expected = TensorMap.from_metatensor(getattr(mto, function)(theirs, names))
    assert result.block(0).samples == expected.block(0).samples
    assert result.block(0).properties == expected.block(0).properties
    np.testing.assert_array_equal(result.block(0).values, expected.block(0).values)  # exact, not allclose
    if reduction == "sum":  # mean/var/std gradients differ by design (docs/operations.md)
        np.testing.assert_array_equal(result.block(0).gradient("positions").values,
                                      expected.block(0).gradient("positions").values)


def test_sum_equals_numpy_sum_of_the_rows():
    tensor = grouped_tensor()
    summed = ops.sum_over_samples(tensor, "atom").block(0)
    block = tensor.block(0)
    for index, (system,) in enumerate(summed.samples.array.tolist()):
        rows = np.flatnonzero(block.samples.array[:, 0] == system)
        assert np.all(np.sum(block.values[rows], axis=0) == summed.values[index])


def test_disabled_checks_still_compare_names_and_gradients():
    first = grouped_tensor()
    block = first.block(0)
    renamed = TensorMap(first.keys, [TensorBlock(block.values, block.samples, block.components,
                                                 block.properties.rename("n", "m"))])
    without_gradients = ops.remove_gradients(first)
    with ops.unsafe_disable_checks():
        for operation in (ops.add, ops.subtract, ops.multiply, ops.divide):
            with pytest.raises(ops.NotEqualError, match="should have the same properties"):
                operation(ops.remove_gradients(first), renamed)
            with pytest.raises(ops.NotEqualError, match="should have the same gradient parameters"):
                operation(first, without_gradients)
    assert ops.checks_enabled()


@pytest.mark.parametrize("shape", [(1000, 1), (1000, 1, 1), (1000, 4)])
def test_one_long_group_adds_in_order(shape):
    """One group whose rows are contiguous in memory: still added in order, not pairwise."""
    values = np.random.default_rng(5).standard_normal(shape) * 10.0 ** np.arange(-6, 6, 12 / 1000).reshape(
        -1, *([1] * (len(shape) - 1)))
    block = TensorBlock(values, Labels.range("atom", shape[0]),
                        [Labels.range("c", shape[1])] if len(shape) == 3 else [], Labels.range("p", shape[-1]))
    expected = np.zeros((1, *shape[1:]))
    np.add.at(expected, np.zeros(shape[0], dtype=np.int64), values)
    ours = ops.sum_over_samples(TensorMap(Labels.single(), [block]), "atom").block(0).values
    theirs = mto.sum_over_samples(TensorMap(Labels.single(), [block]).to_metatensor(), "atom").block(0).values
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(ours, theirs)
