"""`mtdsl.ops.to_sparse` / `from_sparse`: the COO / CSR view of a block-sparse TensorMap, against
metatensor-core's densification and scipy / torch's own sparse machinery; exact round trips."""

import numpy as np
import pytest
import scipy.sparse
import torch

import mtdsl
from mtdsl import Labels, MetadataError, TensorBlock, TensorMap
from tests.interop._helpers import expansion_output


def values_only(tensor: TensorMap) -> TensorMap:
    return TensorMap(tensor.keys, [TensorBlock(b.values, b.samples, b.components, b.properties)
                                   for b in tensor.blocks()])


def dense_reference(tensor: TensorMap):
    """metatensor-core's own densification: the single block of keys_to_properties(...)."""
    theirs = values_only(tensor).to_metatensor()
    theirs = theirs.components_to_properties(tensor.component_names)
    theirs = theirs.keys_to_properties(tensor.keys.names)
    return theirs.block()


def test_layout_is_metatensors_densification():
    tensor = expansion_output()
    reference = dense_reference(tensor)
    samples, columns = mtdsl.ops.sparse_labels(tensor)
    assert samples.names == list(reference.samples.names)
    np.testing.assert_array_equal(samples.array, np.asarray(reference.samples.values))
    assert columns.names == list(reference.properties.names)
    np.testing.assert_array_equal(columns.array, np.asarray(reference.properties.values))
    matrix = mtdsl.ops.to_sparse(tensor)
    np.testing.assert_array_equal(matrix.toarray(), np.asarray(reference.values))
    # only the entries of existing (block, sample) pairs are stored: block sparsity is kept
    assert matrix.nnz == sum(b.values.size for b in tensor.blocks())
    assert matrix.nnz < matrix.shape[0] * matrix.shape[1]


@pytest.mark.parametrize("library", ["scipy", "torch"])
@pytest.mark.parametrize("format", ["coo", "csr"])
def test_round_trip_is_exact(format, library):
    tensor = values_only(expansion_output())
    block = tensor.block(0)
    block.values[0, 0, 0] = 0.0  # an explicit zero of a block survives
    matrix = mtdsl.ops.to_sparse(tensor, format=format, library=library)
    if library == "scipy":
        assert scipy.sparse.issparse(matrix) and matrix.format == format
    else:
        assert matrix.layout == (torch.sparse_coo if format == "coo" else torch.sparse_csr)
    samples, columns = mtdsl.ops.sparse_labels(tensor)
    back = mtdsl.ops.from_sparse(matrix, samples, columns, keys=tensor.keys.names,
                                 components=tensor.component_names)
    back = back.to(arrays="numpy")
    assert back.keys == tensor.keys
    for ours, theirs in zip(back.blocks(), tensor.blocks()):
        assert ours.samples == theirs.samples and ours.components == theirs.components
        assert ours.properties == theirs.properties
        np.testing.assert_array_equal(ours.values, theirs.values)


def test_sparse_products_are_the_blocks_products():
    """A sparse library's own product of the matrix with a vector equals the per-block products."""
    tensor = values_only(expansion_output())
    samples, columns = mtdsl.ops.sparse_labels(tensor)
    weights = np.random.default_rng(0).normal(size=len(columns))
    expected = np.zeros(len(samples))
    start = 0
    for block in tensor.blocks():
        width = int(np.prod(block.values.shape[1:]))
        rows = samples.positions(block.samples.array)
        expected[rows] += block.values.reshape(len(rows), width) @ weights[start:start + width]
        start += width
    csr = mtdsl.ops.to_sparse(tensor, format="csr")
    np.testing.assert_allclose(csr @ weights, expected, rtol=1e-13, atol=1e-13)
    torch_csr = mtdsl.ops.to_sparse(tensor, format="csr", library="torch")
    np.testing.assert_allclose((torch_csr @ torch.from_numpy(weights)).numpy(), expected, rtol=1e-13, atol=1e-13)


def test_torch_values_keep_autograd():
    values = torch.rand(3, 2, dtype=torch.float64, requires_grad=True)
    tensor = TensorMap(Labels.single(), [TensorBlock(values, Labels.range("atom", 3), [], Labels.range("n", 2))])
    matrix = mtdsl.ops.to_sparse(tensor, library="torch")
    torch.sparse.sum(matrix * 3.0).backward()
    np.testing.assert_array_equal(values.grad.numpy(), np.full((3, 2), 3.0))


def test_errors():
    tensor = values_only(expansion_output())
    with pytest.raises(ValueError, match="format must be one of"):
        mtdsl.ops.to_sparse(tensor, format="csc")
    with pytest.raises(ValueError, match="library must be one of"):
        mtdsl.ops.to_sparse(tensor, library="jax")
    samples, columns = mtdsl.ops.sparse_labels(tensor)
    matrix = mtdsl.ops.to_sparse(tensor).tocsr()
    holed = matrix.tolil()
    holed[int(samples.positions(tensor.block(0).samples.array)[0]), 0] = 0
    holed = holed.tocsr()
    holed.eliminate_zeros()
    with pytest.raises(MetadataError, match=r"block \(o3_lambda=0.*not the matrix of a TensorMap"):
        mtdsl.ops.from_sparse(holed, samples, columns, keys=tensor.keys.names, components=tensor.component_names)
    with pytest.raises(MetadataError, match="'species' is not a column dimension"):
        mtdsl.ops.from_sparse(matrix, samples, columns, keys=["species"])
