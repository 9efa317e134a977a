"""The thread-pool driver of a JIT-compiled kernel: `(arrays, scalars, lo, hi) -> err` called on
chunks of its driver range `[lo, hi)` from a thread pool (LLVM IR has no OpenMP; ctypes releases
the GIL), with the C++ kernels' calling convention `(arrays, scalars, threads)`."""

from __future__ import annotations

import ctypes

from ..rendered import RenderedKernel
from ..schedule.abi import ScalarArgument
from ..threads import run_chunks
from .emit import INT64_MAX


CHUNKS_PER_THREAD = 4
_KERNEL_TYPE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


class LLVMKernel:
    """A JIT-compiled kernel with the C++ kernels' calling convention `(arrays, scalars, threads)`:
    the driver range split into chunks, run from a thread pool (ctypes releases the GIL)."""

    def __init__(self, address: int, rendered: RenderedKernel):
        self.raw = _KERNEL_TYPE(address)
        self.rendered = rendered
        count = rendered.driver_count
        self.count = count if isinstance(count, int) or count is None else rendered.scalars.index(count)
        self.parallel = rendered.plan.parallel and count is not None
        self.argtypes = self.restype = None  # set by CompiledModule, unused

    def size(self, scalars) -> int:
        if isinstance(self.rendered.driver_count, ScalarArgument):
            return int(scalars[self.count])
        return int(self.count or 0)

    def __call__(self, arrays, scalars, threads: int) -> int:
        arrays_address = ctypes.cast(arrays, ctypes.c_void_p).value
        scalars_address = ctypes.cast(scalars, ctypes.c_void_p).value
        if not self.parallel:
            return int(self.raw(arrays_address, scalars_address, 0, INT64_MAX))
        n = self.size(scalars)
        threads = min(max(1, int(threads)), n)
        if threads <= 1:
            return int(self.raw(arrays_address, scalars_address, 0, n))
        # a few chunks per thread, taken in turn by the pool's threads and this one (dynamic schedule)
        chunks = min(n, CHUNKS_PER_THREAD * threads)
        bounds = [n * k // chunks for k in range(chunks + 1)]
        raw = self.raw
        return run_chunks(chunks, lambda k: raw(arrays_address, scalars_address, bounds[k], bounds[k + 1]),
                          threads, "llvm")

