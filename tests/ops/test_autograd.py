"""torch autograd flows through the operations (torch.autograd.gradcheck on block values)."""

import numpy as np
import pytest
import torch

import mtdsl.ops as ops
from mtdsl import Labels, TensorBlock, TensorMap


def _tensor(values: torch.Tensor) -> TensorMap:
    """Two blocks sharing `values` (scaled), with positions gradients depending on them."""
    samples = Labels(["system", "atom"], np.array([[0, 0], [0, 1], [1, 0]]))
    properties = Labels(["n"], np.array([[0], [1]]))
    g_samples = Labels(["sample", "system", "atom"], np.array([[0, 0, 0], [1, 0, 1], [2, 1, 0]]))
    xyz = [Labels.range("xyz", 3)]
    blocks = []
    for scale in (1.0, 2.0):
        block = TensorBlock(scale * values + 0.5, samples.to(arrays="torch"), [], properties.to(arrays="torch"))
        gradient = torch.stack([values, 2 * values, values**2], dim=1)
        block.add_gradient("positions", TensorBlock(gradient, g_samples.to(arrays="torch"),
                                                    [x.to(arrays="torch") for x in xyz], block.properties))
        blocks.append(block)
    return TensorMap(Labels(["k"], np.array([[0], [1]])).to(arrays="torch"), blocks)


def _total(result) -> torch.Tensor:
    """Sum of every value and gradient value of a result (map, block or list)."""
    if isinstance(result, (list, tuple)):
        return sum(_total(r) for r in result)
    blocks = [result] if isinstance(result, TensorBlock) else result.blocks()
    total = 0
    for block in blocks:
        total = total + (block.values * torch.linspace(1, 2, block.values.numel()).reshape(block.values.shape)
                         .to(block.values.dtype)).sum()
        for _, gradient in block.gradients():
            total = total + gradient.values.sum()
    return total


SELECTION = Labels(["system"], np.array([[0]]))
OPERATIONS = {
    "add": lambda t: ops.add(t, t),
    "subtract": lambda t: ops.subtract(t, ops.multiply(t, 3.0)),
    "multiply": lambda t: ops.multiply(t, t),
    "divide": lambda t: ops.divide(t, ops.add(t, 2.0)),
    "pow": lambda t: ops.pow(t, 3),
    "abs": lambda t: ops.abs(t),
    "sum_over_samples": lambda t: ops.sum_over_samples(t, "atom"),
    "mean_over_samples": lambda t: ops.mean_over_samples(t, "atom"),
    "var_over_samples": lambda t: ops.var_over_samples(t, "atom"),
    "std_over_properties": lambda t: ops.std_over_properties(t, "n"),
    "join_samples": lambda t: ops.join([t, t], "samples", add_dimension="copy"),
    "join_properties": lambda t: ops.join([t, t], "properties", add_dimension="copy"),
    "slice": lambda t: ops.slice(t, "samples", SELECTION),
    "split": lambda t: ops.split(t, "properties", [[0], [1]]),
    "sort": lambda t: ops.sort(t, descending=True),
    "dot": lambda t: ops.dot(t, ops.remove_gradients(t)),
    "rename": lambda t: ops.rename_dimension(t, "samples", "atom", "center"),
    "keys_to_properties_like": lambda t: ops.drop_blocks(t, Labels(["k"], np.array([[0]]))),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_gradcheck(name):
    values = torch.tensor([[0.3, -1.2], [0.7, 0.4], [-0.9, 1.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: _total(OPERATIONS[name](_tensor(v))), (values,))
