"""Operations on TensorMaps, with the names and signatures of metatensor-operations.

One private module per operation; every function takes and returns mtdsl
`TensorMap` / `TensorBlock` objects, numpy or torch, and propagates gradient blocks.
"""

from ._abs import abs
from ._add import add
from ._allclose import allclose, allclose_block, allclose_block_raise, allclose_raise
from ._divide import divide
from ._equal import equal, equal_block, equal_block_raise, equal_raise
from ._equal_metadata import (
    equal_metadata,
    equal_metadata_block,
    equal_metadata_block_raise,
    equal_metadata_raise,
)
from ._multiply import multiply
from ._pow import pow
from ._reduce_over_properties import (
    mean_over_properties,
    mean_over_properties_block,
    std_over_properties,
    std_over_properties_block,
    sum_over_properties,
    sum_over_properties_block,
    var_over_properties,
    var_over_properties_block,
)
from ._reduce_over_samples import (
    mean_over_samples,
    mean_over_samples_block,
    std_over_samples,
    std_over_samples_block,
    sum_over_samples,
    sum_over_samples_block,
    var_over_samples,
    var_over_samples_block,
)
from ._subtract import subtract
from ._utils import NotEqualError

__all__ = [
    "NotEqualError",
    "abs",
    "add",
    "allclose",
    "allclose_block",
    "allclose_block_raise",
    "allclose_raise",
    "divide",
    "equal",
    "equal_block",
    "equal_block_raise",
    "equal_metadata",
    "equal_metadata_block",
    "equal_metadata_block_raise",
    "equal_metadata_raise",
    "equal_raise",
    "multiply",
    "pow",
    "subtract",
]
