"""TensorBlock: shape validation, gradient layout, copies and conversions."""

import numpy as np
import pytest
import torch

from mtdsl import Labels, MetadataError, TensorBlock


def make_block(n_samples=3, values=None):
    samples = Labels(["system", "atom"], np.array([[0, i] for i in range(n_samples)]).reshape(-1, 2))
    components = [Labels.range("o3_mu", 3)]
    properties = Labels.range("n", 2)
    if values is None:
        values = np.arange(n_samples * 6, dtype=np.float64).reshape(n_samples, 3, 2)
    return TensorBlock(values, samples, components, properties)


def positions_gradient(block):
    rows = np.array([[s, 0, s] for s in range(len(block.samples))]).reshape(-1, 3)
    samples = Labels(["sample", "system", "atom"], rows)
    components = [Labels.range("xyz", 3)] + block.components
    return TensorBlock(np.ones((len(rows), 3, 3, 2)), samples, components, block.properties)


def test_shape_is_checked_against_labels():
    with pytest.raises(MetadataError, match=r"values have shape \[3, 3, 3\] but the labels give \[3, 3, 2\]"):
        make_block(values=np.zeros((3, 3, 3)))


def test_components_must_have_one_dimension():
    with pytest.raises(MetadataError, match="single dimension"):
        TensorBlock(np.zeros((1, 1, 1)), Labels.range("s", 1), [Labels(["a", "b"], np.array([[0, 0]]))], Labels.range("p", 1))


def test_gradient_layout():
    block = make_block()
    block.add_gradient("positions", positions_gradient(block))
    assert block.gradients_list() == ["positions"]
    assert block.has_gradient("positions")
    gradient = block.gradient("positions")
    assert gradient.samples.names == ["sample", "system", "atom"]
    assert [c.names[0] for c in gradient.components] == ["xyz", "o3_mu"]
    with pytest.raises(MetadataError, match="already has a gradient"):
        block.add_gradient("positions", positions_gradient(block))
    with pytest.raises(MetadataError, match="no gradient with respect to 'strain'"):
        block.gradient("strain")


def test_gradient_validation():
    block = make_block()
    gradient = positions_gradient(block)
    bad_samples = TensorBlock(gradient.values, Labels(["system", "atom", "x"], gradient.samples.array), gradient.components, gradient.properties)
    with pytest.raises(MetadataError, match="first sample dimension must be 'sample'"):
        block.add_gradient("positions", bad_samples)
    bad_components = TensorBlock(np.ones((3, 3, 2)), gradient.samples, [Labels.range("xyz", 3)], gradient.properties)
    with pytest.raises(MetadataError, match="components must end with"):
        block.add_gradient("positions", bad_components)
    out_of_range = TensorBlock(np.ones((1, 3, 3, 2)), Labels(["sample", "system", "atom"], np.array([[7, 0, 0]])), gradient.components, gradient.properties)
    with pytest.raises(MetadataError, match="'sample' values must be rows of the block"):
        block.add_gradient("positions", out_of_range)
    with pytest.raises(MetadataError, match="gradient values have dtype .f32. but the block values have dtype .f64."):
        block.add_gradient("positions", positions_gradient(block).to(dtype=np.float32))


def test_nested_gradients():
    block = make_block()
    gradient = positions_gradient(block)
    gradient.add_gradient("positions", TensorBlock(
        np.ones((3, 3, 3, 3, 2)), Labels(["sample", "system", "atom"], np.array([[s, 0, s] for s in range(3)])),
        [Labels.range("xyz_2", 3)] + gradient.components, gradient.properties))
    block.add_gradient("positions", gradient)
    copy = block.copy()
    assert copy.gradient("positions").gradient("positions").shape == (3, 3, 3, 3, 2)


def test_copy_is_deep():
    block = make_block()
    block.add_gradient("positions", positions_gradient(block))
    copy = block.copy()
    copy.values[0, 0, 0] = 100.0
    copy.gradient("positions").values[0] = 5.0
    assert block.values[0, 0, 0] == 0.0
    assert block.gradient("positions").values[0, 0, 0, 0] == 1.0


def test_to_torch_and_back():
    block = make_block()
    block.add_gradient("positions", positions_gradient(block))
    as_torch = block.to(arrays="torch", dtype=torch.float32)
    assert isinstance(as_torch.values, torch.Tensor) and as_torch.values.dtype == torch.float32
    assert isinstance(as_torch.gradient("positions").values, torch.Tensor)
    assert isinstance(as_torch.samples.values, torch.Tensor)
    back = as_torch.to(arrays="numpy", dtype=np.float64)
    np.testing.assert_array_equal(back.values, block.values)
    assert back.samples == block.samples


def test_repr_as_metatensor_prints_it():
    from mtdsl.io.metatensor import block_to_metatensor

    block = make_block()
    assert repr(block) == repr(block_to_metatensor(block))
    block.add_gradient("positions", positions_gradient(block))
    theirs = block_to_metatensor(block)
    assert repr(block) == repr(theirs)
    assert repr(block.gradient("positions")) == repr(theirs.gradient("positions"))
    assert repr(block.copy().gradient("positions")) == repr(theirs.gradient("positions"))
