"""Importing metatensor-torch and PyTorch Geometric in one process, in any order.

torch-geometric (2.8) replaces `torch.index_select` by a Python wrapper when it is imported
(`torch_geometric/hash_tensor.py`, for its `HashTensor`). TorchScript cannot compile that
wrapper, and metatensor-operations scripts functions that call `torch.index_select` when
metatensor-torch is imported: with PyG imported first, `import metatensor.torch` fails.

The fix: every place mtdsl imports metatensor-torch (or metatomic, which imports it) goes
through `import_metatensor_torch()`, which puts torch's own `index_select` back for the
duration of that import only, then restores PyG's wrapper. The scripted functions are
compiled against the real operator; PyG keeps its wrapper for its own tensors. Code that
imports metatensor-torch itself after PyG should import it through this function too, or
import it before torch_geometric (docs/interop.md).
"""

from __future__ import annotations

import contextlib
import importlib
import sys


@contextlib.contextmanager
def torch_index_select_restored():
    """Within the block, `torch.index_select` is torch's own operator, whatever PyG did."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    original = torch._C._VariableFunctions.index_select
    current = torch.index_select
    torch.index_select = original
    try:
        yield
    finally:
        torch.index_select = current


def import_metatensor_torch():
    """`metatensor.torch`, imported safely whether or not torch_geometric was imported first."""
    if "metatensor.torch" in sys.modules:
        return sys.modules["metatensor.torch"]
    try:
        with torch_index_select_restored():
            return importlib.import_module("metatensor.torch")
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("this needs metatensor-torch: pip install metatensor-torch") from error


def import_module_with_metatensor_torch(name: str):
    """Import `name` (e.g. "metatomic.torch"), a module that imports metatensor-torch, safely."""
    import_metatensor_torch()
    with torch_index_select_restored():
        return importlib.import_module(name)
