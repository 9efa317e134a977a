"""Array helpers shared by the data model: numpy and torch arrays behind one small interface.

The data model keeps whatever array type it is given (numpy or torch) and only
converts when it must. torch is imported lazily, so a numpy-only user pays nothing.
"""

from __future__ import annotations

import sys

import numpy as np


def is_torch(array) -> bool:
    """True for a torch.Tensor, without importing torch when it is not loaded."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(array, torch.Tensor)


def to_numpy(array) -> np.ndarray:
    """A numpy view of `array` (zero copy for CPU torch tensors that do not require grad)."""
    if is_torch(array):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def array_kind(array) -> str:
    return "torch" if is_torch(array) else "numpy"


def array_device(array) -> str:
    return str(array.device) if is_torch(array) else "cpu"


def dtype_name(dtype) -> str:
    """'float64', 'float32', 'int32'... for numpy and torch dtypes alike."""
    text = str(dtype)
    return text[len("torch."):] if text.startswith("torch.") else np.dtype(dtype).name


def convert(array, *, dtype=None, device=None, arrays: str | None = None, non_blocking: bool = False):
    """Convert `array` to another dtype, device and/or array library ("numpy" or "torch")."""
    target = arrays or array_kind(array)
    if target not in ("numpy", "torch"):
        raise ValueError(f"arrays must be 'numpy' or 'torch', got {target!r}")
    if target == "numpy":
        if device not in (None, "cpu") and str(device) != "cpu":
            raise ValueError(f"can not move numpy array to non-cpu device: {device}")
        result = to_numpy(array)
        if dtype is not None:
            result = result.astype(numpy_dtype(dtype), copy=False)
        return result
    import torch

    if not is_torch(array):
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:  # e.g. memory-mapped from a file: torch needs its own copy
            array = array.copy()
    result = array if is_torch(array) else torch.from_numpy(array)
    return result.to(dtype=torch_dtype(dtype) if dtype is not None else None, device=device,
                     non_blocking=non_blocking)


def numpy_dtype(dtype) -> np.dtype:
    return np.dtype(dtype_name(dtype))


def torch_dtype(dtype):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, dtype_name(dtype))


def zeros(shape, like):
    """A zero array of `shape` with the dtype, device and library of `like`."""
    if is_torch(like):
        import torch

        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    return np.zeros(shape, dtype=like.dtype)


def concatenate(arrays, axis=0):
    if arrays and is_torch(arrays[0]):
        import torch

        return torch.cat(list(arrays), dim=axis)
    return np.concatenate(arrays, axis=axis)


def to_arguments(args, dtype=None, device=None, where: str = "to"):
    """(dtype, device) from `to()`'s positional arguments, as metatensor reads them: a string
    or a torch.device is a device, anything else a dtype."""
    if len(args) > 2:
        raise ValueError(f"to() takes at most two positional arguments (dtype, device), got {len(args)}")
    for argument in args:
        if isinstance(argument, str) or type(argument).__name__ == "device":
            if device is not None:
                raise ValueError(f"can not give a device twice in `{where}`")
            device = argument
        elif isinstance(argument, (np.dtype, type)) or type(argument).__name__ == "dtype":  # numpy or torch
            if dtype is not None:
                raise ValueError(f"can not give a dtype twice in `{where}`")
            dtype = argument
        else:
            raise TypeError(f"unexpected type in `{where}`: {type(argument)}")
    return dtype, device
