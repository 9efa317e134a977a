"""Operations on TensorMaps, with the names and signatures of metatensor-operations.

One private module per operation; every function takes and returns mtdsl
`TensorMap` / `TensorBlock` objects (numpy or torch arrays) and propagates the
gradient blocks. See docs/operations.md for the differences with
metatensor-operations.
"""

from ..tensor import _metatensor_api
from ._abs import abs
from ._add import add
from ._allclose import (
    allclose,
    allclose_block,
    allclose_block_raise,
    allclose_raise,
)
from ._block_from_array import block_from_array
from ._checks import (
    checks_enabled,
    unsafe_disable_checks,
    unsafe_enable_checks,
)
from ._detach import (
    detach,
    detach_block,
)
from ._divide import divide
from ._dot import dot
from ._drop_blocks import (
    drop_blocks,
    drop_empty_blocks,
)
from ._empty_like import (
    empty_like,
    empty_like_block,
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
from ._lstsq import lstsq
from ._make_contiguous import (
    is_contiguous,
    is_contiguous_block,
    make_contiguous,
    make_contiguous_block,
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
from ._ones_like import (
    ones_like,
    ones_like_block,
)
from ._parallel import (
    block_size,
    map_blocks,
    num_threads,
    worth_threads,
)
from ._pow import pow
from ._random_like import (
    random_uniform_like,
    random_uniform_like_block,
)
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
from ._remove_gradients import (
    remove_gradients,
    remove_gradients_block,
)
from ._requires_grad import (
    requires_grad,
    requires_grad_block,
)
from ._slice import (
    Selector,
    slice,
    slice_block,
)
from ._solve import solve
from ._sparse import from_sparse, sparse_labels, to_sparse
from ._sort import (
    sort,
    sort_block,
)
from ._split import (
    split,
    split_block,
)
from ._subtract import subtract
from ._to import (
    to,
    to_block,
)
from ._unique_metadata import (
    unique_metadata,
    unique_metadata_block,
)
from ._zeros_like import (
    zeros_like,
    zeros_like_block,
)
from ._utils import NotEqualError

__all__ = [
    "NotEqualError",
    "Selector",
    "abs",
    "add",
    "allclose",
    "allclose_block",
    "allclose_block_raise",
    "allclose_raise",
    "append_dimension",
    "block_from_array",
    "block_size",
    "checks_enabled",
    "detach",
    "detach_block",
    "divide",
    "dot",
    "drop_blocks",
    "drop_empty_blocks",
    "empty_like",
    "empty_like_block",
    "equal",
    "equal_block",
    "equal_block_raise",
    "equal_metadata",
    "equal_metadata_block",
    "equal_metadata_block_raise",
    "equal_metadata_raise",
    "equal_raise",
    "filter_blocks",
    "from_sparse",
    "insert_dimension",
    "is_contiguous",
    "is_contiguous_block",
    "join",
    "join_blocks",
    "lstsq",
    "make_contiguous",
    "make_contiguous_block",
    "map_blocks",
    "mean_over_properties",
    "mean_over_properties_block",
    "mean_over_samples",
    "mean_over_samples_block",
    "multiply",
    "num_threads",
    "one_hot",
    "ones_like",
    "ones_like_block",
    "permute_dimensions",
    "pow",
    "random_uniform_like",
    "random_uniform_like_block",
    "remove_dimension",
    "remove_gradients",
    "remove_gradients_block",
    "rename_dimension",
    "requires_grad",
    "requires_grad_block",
    "slice",
    "slice_block",
    "solve",
    "sort",
    "sparse_labels",
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
    "to",
    "to_sparse",
    "to_block",
    "unique_metadata",
    "unique_metadata_block",
    "unsafe_disable_checks",
    "unsafe_enable_checks",
    "var_over_properties",
    "var_over_properties_block",
    "var_over_samples",
    "var_over_samples_block",
    "worth_threads",
    "zeros_like",
    "zeros_like_block",
]

# the data model's arithmetic operators and `==` (`a + b`, `block == other`) call these
# (mtdsl/tensor/_metatensor_api.py: the data model does not import mtdsl.ops, which imports it)
_metatensor_api.register(add=add, subtract=subtract, multiply=multiply, divide=divide, pow=pow, dot=dot,
                         equal=equal, equal_block=equal_block)
