"""Scalar built-in functions of the language, with their derivatives.

Every function takes array-like ``r`` (any shape) and returns an array of the
same shape; with ``derivative=True`` it returns ``(value, d value / d r)``.

- ``gto(r, n, width)`` = ``r^n exp(-r^2 / (2 width^2))`` (not normalized);
  ``d/dr = (n / r - r / width^2) gto``, evaluated as
  ``(n r^(n-1) - r^(n+1) / width^2) exp(...)`` so that ``r = 0`` is finite.
- ``cosine_cutoff(r, cutoff, width)``: featomic's ``ShiftedCosine``: 1 for
  ``r <= cutoff - width``, ``(1 + cos(pi (r - cutoff + width) / width)) / 2``
  for ``cutoff - width < r < cutoff``, 0 for ``r >= cutoff``; ``d/dr = -pi /
  (2 width) sin(pi (r - cutoff + width) / width)`` inside the switching region
  and 0 elsewhere.
- :data:`ELEMENTARY`: ``sqrt exp log sin cos tanh sigmoid silu abs erf erfc
  acos asin floor round softplus`` as ``name -> (f, df/dx)`` pairs of numpy
  functions (``abs'`` is ``sign``, 0 at 0; ``floor`` and ``round``, piecewise
  constant, have derivative 0; ``round`` rounds half to even, as numpy, torch and
  C's ``nearbyint``).
- :data:`BINARY`: ``atan2(y, x)`` as ``name -> (f, (df/dy, df/dx))``.
"""

from __future__ import annotations

from typing import Callable

import math

import numpy as np


def _check_positive_raise(name: str, function: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{function}: {name} must be a positive number, got {value!r}")


def gto(r, n: int, width: float, derivative: bool = False):
    """``r^n exp(-r^2 / (2 width^2))``, and with ``derivative=True`` also its ``d/dr``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"gto: n must be a non-negative integer, got {n!r}")
    _check_positive_raise("width", "gto", width)
    r = np.asarray(r, dtype=np.float64)
    gaussian = np.exp(-0.5 * r * r / (width * width))
    value = r**n * gaussian
    if not derivative:
        return value
    lower = n * r ** (n - 1) if n > 0 else np.zeros_like(r)
    return value, (lower - r ** (n + 1) / (width * width)) * gaussian


def cosine_cutoff(r, cutoff: float, width: float, derivative: bool = False):
    """featomic's shifted cosine cutoff function, and with ``derivative=True`` its ``d/dr``."""
    _check_positive_raise("cutoff", "cosine_cutoff", cutoff)
    _check_positive_raise("width", "cosine_cutoff", width)
    r = np.asarray(r, dtype=np.float64)
    inside = (r > cutoff - width) & (r < cutoff)
    s = np.pi * (r - cutoff + width) / width
    value = np.where(r <= cutoff - width, 1.0, np.where(inside, 0.5 * (1.0 + np.cos(s)), 0.0))
    if not derivative:
        return value
    grad = np.where(inside, -0.5 * np.pi * np.sin(s) / width, 0.0)
    return value, grad


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


ELEMENTARY: dict[str, tuple[Callable, Callable]] = {
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x)),
    "exp": (np.exp, np.exp),
    "log": (np.log, lambda x: 1.0 / x),
    "sin": (np.sin, np.cos),
    "cos": (np.cos, lambda x: -np.sin(x)),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1.0 - _sigmoid(x))),
    "silu": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x)))),
    "abs": (np.abs, np.sign),
}


_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

ELEMENTARY.update({
    "erf": (_erf, lambda x: _TWO_OVER_SQRT_PI * np.exp(-x * x)),
    "erfc": (_erfc, lambda x: -_TWO_OVER_SQRT_PI * np.exp(-x * x)),
    "acos": (np.arccos, lambda x: -1.0 / np.sqrt(1.0 - x * x)),
    "asin": (np.arcsin, lambda x: 1.0 / np.sqrt(1.0 - x * x)),
    "floor": (np.floor, np.zeros_like),
    "round": (np.round, np.zeros_like),
    # log(1 + exp(x)) without overflow
    "softplus": (lambda x: np.logaddexp(0.0, x), _sigmoid),
})

BINARY: dict[str, tuple[Callable, tuple[Callable, ...]]] = {
    "atan2": (np.arctan2, (lambda y, x: x / (x * x + y * y), lambda y, x: -y / (x * x + y * y))),
}
