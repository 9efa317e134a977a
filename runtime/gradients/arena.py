"""The gradient rows' buffers kept between calls of one compiled model (`forward.py: _gradient_rows`).

Every call of a model with forward gradients fills, per gradient, a zeroed dense buffer `[rows,
directions, columns padded like the kernel's indices]` (the SOAP expansion's: 179 MiB for 1,000
atoms). A fresh one costs the operating system's zeroing of every page, 15-450 ms on a virtual
machine that hands free pages back to its host (docs/performance.md, session 9); zeroing a kept one
in place costs a `memset` (6-9 ms). MD loops call the same model on the same shapes every step, so
the compiled module (`runtime/native/compiled.py`) keeps one per gradient.

A kept buffer is reused only when nothing else references it: the blocks of a gradient are views of
it (an intermediate tensor's always, an output's when its rows and columns are one contiguous run),
and a caller may keep them. Every numpy view references the array that owns the memory, so the
owner's reference count tells; one still referenced is left to its holders and a fresh one kept.
"""

from __future__ import annotations

import sys
import threading

import numpy as np


def _references(holder: dict, key) -> int:
    return sys.getrefcount(holder[key])


#: what `_references` counts for an array that only its holder references (measured, not assumed:
#: the interpreter's count of temporary references differs between Python versions)
_ALONE = _references({0: np.empty(0)}, 0)


class GradientArena:
    """Zeroed buffers by key (a gradient: kernel name, wrt), each a view of an array kept here."""

    #: a kept array more than this many times larger than the buffer asked for is replaced (a call
    #: on a small system after a large one does not keep the large one's memory)
    SHRINK = 4

    def __init__(self):
        self._arrays: dict = {}
        self._lock = threading.Lock()  # the check that an array is free and taking it, as one step

    def zeros(self, key, shape: tuple, dtype) -> np.ndarray:
        """A zeroed array of `shape` and `dtype`: a view of the array kept for `key` when nothing else
        references it and it is large enough, else of a fresh one (then kept for `key`)."""
        dtype = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64))
        key = (key, dtype.str)
        with self._lock:
            free = key in self._arrays and _references(self._arrays, key) == _ALONE
            kept = self._arrays[key] if free else None
            if kept is None or len(kept) < size or len(kept) > self.SHRINK * size + 4096:
                # a little room to grow (an MD step with a few more pairs); written before it is read
                # (`fill` below), so no page is first mapped to the zero page and then copied on write
                kept = np.empty(size + size // 8, dtype=dtype)
                self._arrays[key] = kept
            buffer = kept[:size].reshape(shape)
        buffer.fill(0)
        return buffer
