"""Run a per-block function over all blocks, on several threads for large numpy maps.

metatensor-operations loops over the blocks in Python, one after the other. The
numpy kernels doing the work (ufuncs, take, concatenate, reductions) release the
GIL, so large maps go through a thread pool instead, one task per block, results
in block order. Small maps, and torch arrays (torch has its own intra-op threads
and autograd bookkeeping), stay on the calling thread. So do the operations that
only copy (`join`, `slice`, `split`): arrays allocated by worker threads come from
other malloc arenas and page-fault on every call, which costs more than the copy.

``MTDSL_NUM_THREADS`` sets the number of threads (default: the CPU count, at most
8); ``MTDSL_NUM_THREADS=1`` turns threading off.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from ..tensor._array import is_torch

# below this many array elements in all blocks (gradients included), threads cost more than they save
MIN_PARALLEL_SIZE = 500_000

_pool: ThreadPoolExecutor | None = None


def num_threads() -> int:
    configured = os.environ.get("MTDSL_NUM_THREADS")
    if configured:
        return max(1, int(configured))
    return max(1, min(os.cpu_count() or 1, 8))


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(num_threads(), thread_name_prefix="mtdsl-ops")
    return _pool


def block_size(block) -> int:
    """Number of array elements in `block` and its gradients."""
    size = int(block.values.size) if not is_torch(block.values) else block.values.numel()
    for _, gradient in block.gradients():
        size += block_size(gradient)
    return size


def worth_threads(blocks) -> bool:
    if len(blocks) < 2 or num_threads() < 2 or is_torch(blocks[0].values):
        return False
    return sum(block_size(b) for b in blocks) >= MIN_PARALLEL_SIZE


def map_blocks(function, blocks, *others, threads: bool | None = None) -> list:
    """``[function(block, *other) for block, *other in zip(blocks, *others)]``, threaded when
    worth it (decided from `blocks`, unless `threads` says)."""
    blocks = list(blocks)
    if worth_threads(blocks) if threads is None else threads:
        return list(_executor().map(function, blocks, *others))
    return [function(*arguments) for arguments in zip(blocks, *others)]
