"""`sum_over_samples`, `mean_over_samples`, `var_over_samples`, `std_over_samples`.

The named sample dimensions are reduced away: samples that agree on the remaining
dimensions are merged, and the merged samples come out sorted (like
metatensor-operations). Without remaining dimensions the result has a single
sample ``_ = 0``.

Gradients. For a group :math:`G` of :math:`n` samples merged into one, with values
:math:`x_i` and gradients :math:`\\nabla x_i` (absent gradient rows are zeros):

* sum: :math:`\\nabla \\sum_i x_i = \\sum_i \\nabla x_i`;
* mean: :math:`\\nabla \\bar{x} = \\frac{1}{n} \\sum_i \\nabla x_i`;
* var: :math:`\\nabla \\sigma^2 = 2 \\left(\\frac{1}{n}\\sum_i x_i \\nabla x_i
  - \\bar{x} \\frac{1}{n} \\sum_i \\nabla x_i\\right)`;
* std: :math:`\\nabla \\sigma = \\nabla \\sigma^2 / (2 \\sigma)`, and 0 where
  :math:`\\sigma = 0`.

Gradient rows are merged when they agree on the merged sample and on the other
gradient sample dimensions. metatensor-operations 0.5.0 divides the mean, var
and std gradients by the number of merged gradient *rows* instead of :math:`n`;
the two agree when every sample of a group has a gradient row for each
parameter (dense gradients, e.g. ``strain``) and we use :math:`n`, the
derivative of the mean, otherwise (checked by finite differences).
"""

from __future__ import annotations

from typing import List, Optional, Union

import numpy as np

from ..tensor import Labels, TensorBlock, TensorMap
from . import _dispatch
from ._block import values_at_gradient_samples
from ._parallel import map_blocks
from ._reduce import (
    check_names_present,
    check_reduction,
    empty_merged_labels,
    group_rows,
    merge_labels,
    names_list,
    reduce_groups,
)
from ._utils import check_tensor_map, no_gradients_of_gradients


def _reduce_over_samples_block(
    block: TensorBlock,
    sample_names: Union[List[str], str],
    reduction: str,
    remaining_samples: Optional[List[str]] = None,
) -> TensorBlock:
    names = block.samples.names
    reduced = names_list(sample_names)
    remaining = [n for n in names if n not in reduced] if remaining_samples is None else remaining_samples
    check_reduction(reduction)

    if len(block.samples) == 0:
        # metatensor-operations gives samples without names here, which cannot be
        # mixed with other blocks' `_`; we keep `_` for consistency
        samples = empty_merged_labels(remaining)
        result = TensorBlock(block.values, samples, block.components, block.properties)
        for parameter, gradient in block.gradients():
            no_gradients_of_gradients(gradient)
            result.add_gradient(parameter, gradient)
        return result

    samples, index = merge_labels(block.samples, remaining)
    n_new = len(samples)
    values = block.values
    broadcast = (-1,) + (1,) * (values.ndim - 1)
    counts = np.bincount(index, minlength=n_new)
    count_array = _dispatch.as_like(counts.astype(np.float64), values).reshape(broadcast)
    result_values, mean, std = reduce_groups(
        values, index, n_new, count_array, reduction, _dispatch.rows_add, _dispatch.take
    )

    result = TensorBlock(result_values, samples, block.components, block.properties)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        result.add_gradient(
            parameter, _reduce_gradient(block, gradient, index, counts, reduction, mean, std)
        )
    return result


def _reduce_gradient(block, gradient, index, counts, reduction, mean, std) -> TensorBlock:
    if len(gradient.samples) == 0:
        return TensorBlock(gradient.values, gradient.samples, gradient.components, gradient.properties)
    rows = gradient.samples.array.copy()
    rows[:, 0] = index[rows[:, 0]]
    new_rows, gradient_index = group_rows(rows)
    samples = Labels._trusted(tuple(gradient.samples.names), new_rows, like=gradient.samples.values)
    n_rows = len(new_rows)
    values = gradient.values
    total = _dispatch.rows_add(n_rows, values, gradient_index)
    if reduction == "sum":
        return TensorBlock(total, samples, gradient.components, gradient.properties)

    parent = new_rows[:, 0].astype(np.int64)
    broadcast = (-1,) + (1,) * (values.ndim - 1)
    n = _dispatch.as_like(counts[parent].astype(np.float64), values).reshape(broadcast)
    mean_gradient = total / n
    if reduction == "mean":
        return TensorBlock(mean_gradient, samples, gradient.components, gradient.properties)

    x_times_gradient = values * values_at_gradient_samples(block, gradient)
    mean_x_gradient = _dispatch.rows_add(n_rows, x_times_gradient, gradient_index) / n
    mean_at_rows = _take_parent(mean, parent, values)
    var_gradient = 2 * (mean_x_gradient - mean_at_rows * mean_gradient)
    if reduction == "var":
        return TensorBlock(var_gradient, samples, gradient.components, gradient.properties)
    std_at_rows = _take_parent(std, parent, values)
    with np.errstate(divide="ignore", invalid="ignore"):
        std_gradient = _dispatch.nan_to_zero(var_gradient / (2 * std_at_rows))
    return TensorBlock(std_gradient, samples, gradient.components, gradient.properties)


def _take_parent(array, parent: np.ndarray, gradient_values):
    """`array[parent]`, broadcastable against the gradient values."""
    extra = gradient_values.ndim - array.ndim
    return _dispatch.take(array, parent).reshape((-1, *([1] * extra), *array.shape[1:]))


def _reduce_over_samples(tensor: TensorMap, sample_names: Union[List[str], str], reduction: str) -> TensorMap:
    check_tensor_map(tensor, "tensor")
    reduced = names_list(sample_names)
    check_names_present(reduced, tensor.sample_names, "sample")
    remaining = [n for n in tensor.sample_names if n not in reduced]
    blocks = map_blocks(lambda b: _reduce_over_samples_block(b, reduced, reduction, remaining), tensor.blocks())
    return TensorMap(tensor.keys, blocks)


def sum_over_samples_block(block: TensorBlock, sample_names: Union[List[str], str]) -> TensorBlock:
    """Sum the values of `block` over the sample dimensions `sample_names`."""
    return _reduce_over_samples_block(block, sample_names, "sum")


def sum_over_samples(tensor: TensorMap, sample_names: Union[List[str], str]) -> TensorMap:
    """Sum the values of every block over the sample dimensions `sample_names`."""
    return _reduce_over_samples(tensor, sample_names, "sum")


def mean_over_samples_block(block: TensorBlock, sample_names: Union[List[str], str]) -> TensorBlock:
    """Average the values of `block` over the sample dimensions `sample_names`."""
    return _reduce_over_samples_block(block, sample_names, "mean")


def mean_over_samples(tensor: TensorMap, sample_names: Union[List[str], str]) -> TensorMap:
    """Average the values of every block over the sample dimensions `sample_names`."""
    return _reduce_over_samples(tensor, sample_names, "mean")


def var_over_samples_block(block: TensorBlock, sample_names: Union[List[str], str]) -> TensorBlock:
    """Variance (biased, divided by n) of `block` over the sample dimensions `sample_names`."""
    return _reduce_over_samples_block(block, sample_names, "var")


def var_over_samples(tensor: TensorMap, sample_names: Union[List[str], str]) -> TensorMap:
    """Variance (biased, divided by n) of every block over the sample dimensions `sample_names`."""
    return _reduce_over_samples(tensor, sample_names, "var")


def std_over_samples_block(block: TensorBlock, sample_names: Union[List[str], str]) -> TensorBlock:
    """Standard deviation of `block` over the sample dimensions `sample_names`."""
    return _reduce_over_samples_block(block, sample_names, "std")


def std_over_samples(tensor: TensorMap, sample_names: Union[List[str], str]) -> TensorMap:
    """Standard deviation of every block over the sample dimensions `sample_names`."""
    return _reduce_over_samples(tensor, sample_names, "std")
