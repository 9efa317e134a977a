"""`sum_over_properties`, `mean_over_properties`, `var_over_properties`, `std_over_properties`.

The named property dimensions are reduced away: properties that agree on the
remaining dimensions are merged, sorted. Without remaining dimensions the result
has a single property ``_ = 0``. Samples are unchanged, so gradient blocks keep
their samples and are reduced over the same properties.

Gradients, for a group of :math:`n` properties :math:`x_j` merged into one:
sum :math:`\\sum_j \\nabla x_j`; mean :math:`\\frac1n \\sum_j \\nabla x_j`;
var :math:`2 (\\frac1n \\sum_j x_j \\nabla x_j - \\bar{x} \\frac1n \\sum_j \\nabla x_j)`;
std :math:`\\nabla \\sigma^2 / (2 \\sigma)`, 0 where :math:`\\sigma = 0`.
(metatensor-operations 0.5.0 gets var and std gradients wrong for blocks with
components, and std gradients wrong for torch; we follow the formulas above,
checked by finite differences.)
"""

from __future__ import annotations

from typing import List, Union

import numpy as np

from ..tensor import TensorBlock, TensorMap
from . import _dispatch
from ._block import values_at_gradient_samples
from ._parallel import map_blocks
from ._reduce import (
    check_names_present,
    check_reduction,
    empty_merged_labels,
    merge_labels,
    names_list,
    reduce_groups,
)
from ._utils import check_tensor_map, no_gradients_of_gradients


def _reduce_over_properties_block(
    block: TensorBlock, property_names: Union[List[str], str], reduction: str
) -> TensorBlock:
    names = block.properties.names
    reduced = names_list(property_names)
    remaining = [n for n in names if n not in reduced]
    check_reduction(reduction)

    if len(block.properties) == 0:
        properties = empty_merged_labels(remaining)
        result = TensorBlock(block.values, block.samples, block.components, properties)
        for parameter, gradient in block.gradients():
            no_gradients_of_gradients(gradient)
            result.add_gradient(
                parameter, TensorBlock(gradient.values, gradient.samples, gradient.components, properties)
            )
        return result

    properties, index = merge_labels(block.properties, remaining)
    n_new = len(properties)
    counts = np.bincount(index, minlength=n_new)
    values = block.values
    n = _dispatch.as_like(counts.astype(np.float64), values)
    last = values.ndim - 1
    result_values, mean, std = reduce_groups(
        values, index, n_new, n, reduction, _dispatch.columns_add,
        lambda group_values, index: _dispatch.take(group_values, index, axis=last),
    )

    result = TensorBlock(result_values, block.samples, block.components, properties)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        g = gradient.values
        g_total = _dispatch.columns_add(n_new, g, index)
        if reduction == "sum":
            g_result = g_total
        else:
            g_mean = g_total / n
            if reduction == "mean":
                g_result = g_mean
            else:
                x = values_at_gradient_samples(block, gradient)
                mean_x_g = _dispatch.columns_add(n_new, g * x, index) / n
                g_result = 2 * (mean_x_g - values_at_gradient_samples(block, gradient, mean) * g_mean)
                if reduction == "std":
                    with np.errstate(divide="ignore", invalid="ignore"):
                        std_at = values_at_gradient_samples(block, gradient, std)
                        g_result = _dispatch.nan_to_zero(g_result / (2 * std_at))
        result.add_gradient(parameter, TensorBlock(g_result, gradient.samples, gradient.components, properties))
    return result


def _reduce_over_properties(tensor: TensorMap, property_names: Union[List[str], str], reduction: str) -> TensorMap:
    check_tensor_map(tensor, "tensor")
    reduced = names_list(property_names)
    check_names_present(reduced, tensor.property_names, "property")
    blocks = map_blocks(lambda b: _reduce_over_properties_block(b, reduced, reduction), tensor.blocks())
    return TensorMap(tensor.keys, blocks)


def sum_over_properties_block(block: TensorBlock, property_names: Union[List[str], str]) -> TensorBlock:
    """Sum the values of `block` over the property dimensions `property_names`."""
    return _reduce_over_properties_block(block, property_names, "sum")


def sum_over_properties(tensor: TensorMap, property_names: Union[List[str], str]) -> TensorMap:
    """Sum the values of every block over the property dimensions `property_names`."""
    return _reduce_over_properties(tensor, property_names, "sum")


def mean_over_properties_block(block: TensorBlock, property_names: Union[List[str], str]) -> TensorBlock:
    """Average the values of `block` over the property dimensions `property_names`."""
    return _reduce_over_properties_block(block, property_names, "mean")


def mean_over_properties(tensor: TensorMap, property_names: Union[List[str], str]) -> TensorMap:
    """Average the values of every block over the property dimensions `property_names`."""
    return _reduce_over_properties(tensor, property_names, "mean")


def var_over_properties_block(block: TensorBlock, property_names: Union[List[str], str]) -> TensorBlock:
    """Variance (biased) of `block` over the property dimensions `property_names`."""
    return _reduce_over_properties_block(block, property_names, "var")


def var_over_properties(tensor: TensorMap, property_names: Union[List[str], str]) -> TensorMap:
    """Variance (biased) of every block over the property dimensions `property_names`."""
    return _reduce_over_properties(tensor, property_names, "var")


def std_over_properties_block(block: TensorBlock, property_names: Union[List[str], str]) -> TensorBlock:
    """Standard deviation of `block` over the property dimensions `property_names`."""
    return _reduce_over_properties_block(block, property_names, "std")


def std_over_properties(tensor: TensorMap, property_names: Union[List[str], str]) -> TensorMap:
    """Standard deviation of every block over the property dimensions `property_names`."""
    return _reduce_over_properties(tensor, property_names, "std")
