"""Array helpers shared by the data model: numpy, torch and jax arrays behind one small interface.

The data model keeps whatever array type it is given (numpy, torch or jax) and only
converts when it must. torch and jax are imported lazily, so a numpy-only user pays nothing.
Conversions to and from jax go through DLPack: zero-copy where the memory allows it (jax
needs 64-byte aligned buffers; numpy's may not be, and are then copied).
"""

from __future__ import annotations

import functools
import sys

import numpy as np


def is_torch(array) -> bool:
    """True for a torch.Tensor, without importing torch when it is not loaded."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(array, torch.Tensor)


def is_jax(array) -> bool:
    """True for a jax.Array, without importing jax when it is not loaded."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(array, jax.Array)


def to_numpy(array) -> np.ndarray:
    """A numpy view of `array` (zero copy for CPU torch tensors that do not require grad, and for
    CPU jax arrays: then read-only)."""
    if is_torch(array):
        return array.detach().cpu().numpy()
    if is_jax(array):
        return np.from_dlpack(array)
    return np.asarray(array)


def array_kind(array) -> str:
    return "torch" if is_torch(array) else "jax" if is_jax(array) else "numpy"


def array_device(array) -> str:
    if is_torch(array):
        return str(array.device)
    if is_jax(array):
        try:
            device = next(iter(array.devices()))
        except Exception:  # a value traced by jax.jit / grad has no device yet: the default one
            import jax

            device = jax.devices()[0]
        return "cpu" if device.platform == "cpu" else str(device)
    return "cpu"


def dtype_name(dtype) -> str:
    """'float64', 'float32', 'int32'... for numpy and torch dtypes alike."""
    try:
        return _dtype_name(dtype)
    except TypeError:  # an unhashable dtype-like
        return _dtype_name.__wrapped__(dtype)


@functools.lru_cache(maxsize=64)  # (a TensorMap's checks name each block's dtype: thousands per call)
def _dtype_name(dtype) -> str:
    text = str(dtype)
    return text[len("torch."):] if text.startswith("torch.") else np.dtype(dtype).name


def convert(array, *, dtype=None, device=None, arrays: str | None = None, non_blocking: bool = False):
    """Convert `array` to another dtype, device and/or array library ("numpy", "torch" or "jax")."""
    target = arrays or array_kind(array)
    if target not in ("numpy", "torch", "jax"):
        raise ValueError(f"arrays must be 'numpy', 'torch' or 'jax', got {target!r}")
    if target == "jax":
        return to_jax(array, dtype=dtype, device=device)
    if is_jax(array):
        array = to_numpy(array)
        if target == "numpy" and dtype is None:
            return array
        if target == "torch":  # through DLPack: zero-copy (jax buffers are aligned)
            import torch

            array = torch.from_dlpack(array)
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


def to_jax(array, dtype=None, device=None):
    """`array` as a jax.Array through DLPack (zero-copy when aligned), keeping float64 and int64:
    64-bit types are enabled for the conversion only, not for the user's own jax code."""
    import jax

    if device not in (None, "cpu") and str(device) != "cpu":
        raise ValueError(f"jax arrays are converted on the CPU only, cannot move them to {device!r}")
    with jax.enable_x64(True):
        if is_jax(array):
            result = array
        elif is_torch(array):
            result = jax.dlpack.from_dlpack(array.detach().contiguous())
        else:
            result = jax.numpy.asarray(np.ascontiguousarray(array)) if not hasattr(array, "__dlpack__") \
                else jax.dlpack.from_dlpack(np.ascontiguousarray(array))
        if dtype is not None and dtype_name(result.dtype) != dtype_name(dtype):
            result = result.astype(numpy_dtype(dtype))
    return result


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
