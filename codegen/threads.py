"""Native ranges on threads: per-process thread pools and a dynamic schedule of chunks.

The kernels' entry points (ctypes calls of the C++ library, llvmlite's JIT code)
release the GIL, so Python threads run them in parallel. Each user has a pool of
its own name: an LLVM kernel's chunks and the ranges of a scatter kernel never
wait on a pool that is running them.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

_POOLS: dict = {}
_LOCK = threading.Lock()


def pool(name: str, workers: int) -> ThreadPoolExecutor:
    """The pool `name` of `workers` threads of this process (a forked child has none of its parent's)."""
    key = (name, os.getpid(), workers)
    with _LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"mtdsl-{name}")
        return _POOLS[key]


def run_chunks(n_chunks: int, run: Callable[[int], int], threads: int, name: str) -> int:
    """`run(k)` for every chunk `k < n_chunks`, taken in turn by this thread and `threads - 1` of
    pool `name` (a dynamic schedule); the OR of what the calls return (their error bits)."""
    taken = itertools.count()

    def work() -> int:
        error = 0
        while True:
            k = next(taken)
            if k >= n_chunks:
                return error
            error |= run(k)

    helpers = [pool(name, threads - 1).submit(work) for _ in range(threads - 1)] if threads > 1 else []
    error = work()
    for helper in helpers:
        error |= helper.result()
    return int(error)
