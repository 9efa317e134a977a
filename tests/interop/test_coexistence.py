"""PyTorch Geometric and metatensor-torch in one process, in either order (issue #20, item 6).

torch_geometric 2.8 replaces `torch.index_select` with a wrapper TorchScript cannot compile;
metatensor-torch scripts functions calling it on import. Each order runs in a fresh interpreter,
since the imports are process-wide."""

import subprocess
import sys

import pytest

PYG_FIRST = """
import numpy as np, torch, torch_geometric
import mtdsl, mtdsl.pyg
from mtdsl import Labels, TensorBlock, TensorMap
tensor = TensorMap(Labels.single(), [TensorBlock(np.ones((2, 1)), Labels.range("atom", 2), [], Labels.range("n", 1))])
theirs = tensor.to_metatensor_torch()
import metatensor.torch  # already imported by mtdsl: the user's own import works too
assert metatensor.torch.sum_over_samples(theirs, ["atom"]).block(0).values.item() == 2.0
assert torch.index_select.__module__ == "torch_geometric.hash_tensor"  # PyG keeps its wrapper
data = mtdsl.pyg.to_data(mtdsl.System([1, 8], np.array([[0.0, 0, 0], [1.0, 0, 0]])), cutoff=2.0)
assert data.edge_index.shape == (2, 2)
print("ok")
"""

METATENSOR_FIRST = """
import numpy as np, torch
import mtdsl
from mtdsl import Labels, TensorBlock, TensorMap
tensor = TensorMap(Labels.single(), [TensorBlock(np.ones((2, 1)), Labels.range("atom", 2), [], Labels.range("n", 1))])
theirs = tensor.to_metatensor_torch()
import mtdsl.pyg
data = mtdsl.pyg.to_data(mtdsl.System([1, 8], np.array([[0.0, 0, 0], [1.0, 0, 0]])), cutoff=2.0)
from torch_geometric.data import Batch
batch = Batch.from_data_list([data, data])
assert len(mtdsl.pyg.to_systems(batch)) == 2
import metatensor.torch
assert metatensor.torch.sum_over_samples(theirs, ["atom"]).block(0).values.item() == 2.0
print("ok")
"""

PYG_THEN_METATENSOR_WITHOUT_MTDSL = """
import torch_geometric
import metatensor.torch
"""


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("code", [PYG_FIRST, METATENSOR_FIRST], ids=["pyg-first", "metatensor-torch-first"])
def test_both_orders_work(code):
    result = run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_the_trap_is_real_without_mtdsl():
    """The trap this guards against still exists upstream: when it stops failing, the workaround
    in mtdsl/_coexist.py (and its paragraph in docs/interop.md) can go."""
    result = run(PYG_THEN_METATENSOR_WITHOUT_MTDSL)
    assert result.returncode != 0
    assert "index_select" in result.stderr or "Python builtin" in result.stderr or "compile" in result.stderr
