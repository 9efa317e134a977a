"""Block values and gradients through DLPack: numpy, torch and jax as consumers and producers, and
`TensorMap.to(arrays="jax")` and back, exact and zero-copy where the memory allows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mtdsl
from mtdsl import Labels, TensorBlock, TensorMap
from tests.interop._helpers import assert_identical, expansion_output

CONSUMERS = {
    "numpy": np.from_dlpack,
    "torch": torch.from_dlpack,
    "jax": jax.dlpack.from_dlpack,
}


def pointer(array) -> int:
    if isinstance(array, np.ndarray):
        return array.ctypes.data
    if isinstance(array, torch.Tensor):
        return array.data_ptr()
    return array.unsafe_buffer_pointer()


@pytest.mark.parametrize("producer", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
def test_values_and_gradients_are_dlpack_producers(producer, consumer):
    tensor = expansion_output().to(arrays=producer)
    with jax.enable_x64(True):
        for block in tensor.blocks():
            for values in [block.values] + [g.values for _, g in block.gradients()]:
                found = CONSUMERS[consumer](values)
                assert str(found.dtype).replace("torch.", "") == "float64"
                np.testing.assert_array_equal(np.asarray(found), mtdsl.tensor._array.to_numpy(values))
                if consumer != "jax" or pointer(values) % 64 == 0:  # jax imports aligned memory only
                    assert pointer(found) == pointer(values)  # shared, not copied


def test_to_jax_and_back_is_exact():
    tensor = expansion_output()
    as_jax = tensor.to(arrays="jax")
    block = as_jax.block(0)
    assert isinstance(block.values, jax.Array) and block.values.dtype == jnp.float64
    assert isinstance(block.gradient("positions").values, jax.Array)
    assert block.gradient("positions").values.dtype == jnp.float64
    assert as_jax.info() == tensor.info()
    assert_identical(as_jax.to(arrays="numpy"), tensor)
    assert_identical(as_jax.to(arrays="torch").to(arrays="numpy"), tensor)
    # numpy from jax is a view of jax's buffer; torch's tensors become jax arrays without a copy
    assert pointer(as_jax.to(arrays="numpy").block(0).values) == pointer(block.values)
    from_torch = TensorMap(tensor.keys, [TensorBlock(torch.rand(b.values.shape, dtype=torch.float64), b.samples,
                                                     b.components, b.properties) for b in tensor.blocks()])
    assert from_torch.block(1).values.data_ptr() % 64 == 0  # torch's own allocations are aligned
    assert pointer(from_torch.to(arrays="jax").block(1).values) == pointer(from_torch.block(1).values)
    assert repr(as_jax) == repr(tensor)  # metatensor's layout (names and shapes) for any array library


def test_jax_blocks_compute_with_jax():
    """Blocks of jax arrays are usable by jax code: a jitted function of the values."""
    tensor = expansion_output().to(arrays="jax")
    with jax.enable_x64(True):
        total = jax.jit(lambda blocks: sum(jnp.sum(b ** 2) for b in blocks))([b.values for b in tensor.blocks()])
    expected = sum(float(np.sum(b.values ** 2)) for b in expansion_output().blocks())
    assert float(total) == pytest.approx(expected, rel=1e-14)


def test_a_block_from_any_dlpack_producer():
    values = torch.arange(6, dtype=torch.float64).reshape(3, 2)

    class Producer:  # any object with the DLPack protocol (e.g. a TensorFlow tensor) is taken as numpy
        def __dlpack__(self, **kwargs):
            return values.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return values.__dlpack_device__()

    block = TensorBlock(Producer(), Labels.range("atom", 3), [], Labels.range("n", 2))
    assert isinstance(block.values, np.ndarray) and pointer(block.values) == values.data_ptr()


def test_a_wrong_library_is_named():
    with pytest.raises(ValueError, match="arrays must be 'numpy', 'torch' or 'jax', got 'tensorflow'"):
        expansion_output().to(arrays="tensorflow")
