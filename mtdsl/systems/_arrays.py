"""Small helpers that treat numpy arrays and torch tensors alike.

torch is never imported here: a value is a tensor only when torch is already
loaded (``sys.modules``) and the value is an instance of ``torch.Tensor``, so
numpy-only users do not pay for importing torch.
"""

from __future__ import annotations

import sys

import numpy as np


def torch_module():
    """The torch module if it is already imported, else ``None``."""
    return sys.modules.get("torch")


def is_torch(value) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(value, torch.Tensor)


def to_numpy(value) -> np.ndarray:
    """A numpy view or copy of ``value``, detached from any autograd graph."""
    if is_torch(value):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def like(value, reference, dtype=None):
    """``value`` (numpy-like) as an array of the same library and device as
    ``reference``; ``dtype`` is a numpy dtype, translated for torch."""
    if is_torch(reference):
        torch = torch_module()
        array = np.asarray(value, dtype=dtype)
        return torch.from_numpy(np.ascontiguousarray(array)).to(reference.device)
    return np.asarray(value, dtype=dtype)


def dtype_name(value) -> str:
    """``"float64"``, ``"int32"``...: the dtype without its library prefix."""
    return str(value.dtype).removeprefix("torch.")


def concatenate(arrays, reference):
    """Concatenate along the first axis, keeping autograd for tensors."""
    if is_torch(reference):
        return torch_module().cat(list(arrays))
    return np.concatenate(list(arrays))


def stack(arrays, reference):
    if is_torch(reference):
        return torch_module().stack(list(arrays))
    return np.stack(list(arrays))
