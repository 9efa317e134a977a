"""`to`: a TensorMap with its arrays in another library (numpy/torch), dtype or device."""

from __future__ import annotations

from typing import Optional

from ..tensor import TensorBlock, TensorMap
from ._requires_grad import requires_grad as _requires_grad
from ._requires_grad import requires_grad_block as _requires_grad_block


def _check(backend, requires_grad) -> None:
    if backend not in (None, "numpy", "torch"):
        raise ValueError(f"Unknown backend: {backend}")
    if requires_grad and backend == "numpy":
        raise ValueError("the `numpy` backend option does not support autograd gradient tracking")


def to(
    tensor: TensorMap,
    backend: Optional[str] = None,
    dtype=None,
    device=None,
    requires_grad: Optional[bool] = None,
) -> TensorMap:
    """``tensor`` with arrays converted to ``backend`` (``"numpy"`` or ``"torch"``),
    ``dtype`` and ``device``, gradients included; labels follow the arrays.

    :param requires_grad: torch only, set autograd tracking on the new arrays
    """
    _check(backend, requires_grad)
    result = tensor.to(dtype=dtype, device=device, arrays=backend)
    if requires_grad is not None:
        result = _requires_grad(result, requires_grad)
    return result


def to_block(
    block: TensorBlock,
    backend: Optional[str] = None,
    dtype=None,
    device=None,
    requires_grad: Optional[bool] = None,
) -> TensorBlock:
    """``block`` with arrays converted (see `to`)."""
    _check(backend, requires_grad)
    result = block.to(dtype=dtype, device=device, arrays=backend)
    if requires_grad is not None:
        result = _requires_grad_block(result, requires_grad)
    return result
