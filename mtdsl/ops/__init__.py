"""Operations on TensorMaps, with the names and signatures of metatensor-operations.

One private module per operation; every function takes and returns mtdsl
`TensorMap` / `TensorBlock` objects (numpy or torch arrays) and propagates the
gradient blocks. See docs/operations.md for the differences with
metatensor-operations.
"""

from ._abs import abs
from ._add import add
from ._allclose import (
    allclose,
    allclose_block,
    allclose_block_raise,
    allclose_raise,
)
from ._divide import divide
from ._drop_blocks import (
    drop_blocks,
    drop_empty_blocks,
)
from ._equal import (
    equal,
    equal_block,
    equal_block_raise,
    equal_raise,
)
from ._equal_metadata import (
    equal_metadata,
    equal_metadata_block,
    equal_metadata_block_raise,
    equal_metadata_raise,
)
from ._filter_blocks import filter_blocks
from ._join import (
    join,
    join_blocks,
)
from ._manipulate_dimension import (
    append_dimension,
    insert_dimension,
    permute_dimensions,
    remove_dimension,
    rename_dimension,
)
from ._multiply import multiply
from ._one_hot import one_hot
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
from ._slice import (
    slice,
    slice_block,
)
from ._sort import (
    sort,
    sort_block,
)
from ._split import (
    split,
    split_block,
)
from ._subtract import subtract
from ._unique_metadata import (
    unique_metadata,
    unique_metadata_block,
)
from ._utils import NotEqualError

__all__ = [
    "NotEqualError",
    "abs",
    "add",
    "allclose",
    "allclose_block",
    "allclose_block_raise",
    "allclose_raise",
    "append_dimension",
    "divide",
    "drop_blocks",
    "drop_empty_blocks",
    "equal",
    "equal_block",
    "equal_block_raise",
    "equal_metadata",
    "equal_metadata_block",
    "equal_metadata_block_raise",
    "equal_metadata_raise",
    "equal_raise",
    "filter_blocks",
    "insert_dimension",
    "join",
    "join_blocks",
    "mean_over_properties",
    "mean_over_properties_block",
    "mean_over_samples",
    "mean_over_samples_block",
    "multiply",
    "one_hot",
    "permute_dimensions",
    "pow",
    "remove_dimension",
    "rename_dimension",
    "slice",
    "slice_block",
    "sort",
    "sort_block",
    "split",
    "split_block",
    "std_over_properties",
    "std_over_properties_block",
    "std_over_samples",
    "std_over_samples_block",
    "subtract",
    "sum_over_properties",
    "sum_over_properties_block",
    "sum_over_samples",
    "sum_over_samples_block",
    "unique_metadata",
    "unique_metadata_block",
    "var_over_properties",
    "var_over_properties_block",
    "var_over_samples",
    "var_over_samples_block",
]
