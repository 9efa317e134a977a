"""The LLVM backend: loop IR -> LLVM IR through `llvmlite.ir.IRBuilder`, then JIT.

The same plan as the C++ backend (`codegen/schedule/plan.py`), the same arguments
(`codegen/schedule/abi.py`) and dense body buffer (`runtime/native/compiled.py` resolves and
assembles them), so a kernel rendered here plugs into `CompiledModule`
unchanged. Each kernel becomes

    i64 @mt_kernel_K(i8** arrays, i64* scalars, i64 lo, i64 hi)

returning the C++ backend's error bits (1 missing block entry, 2 index out of
range, 4 distance beyond a spline). When the plan's outermost loop is a kernel
index (`plan.parallel`), the function runs the positions `[lo, hi)` of that
loop only: LLVM IR has no OpenMP, so `LLVMKernel` splits the driver range into
chunks and calls the function from a thread pool (ctypes releases the GIL);
iterations of the driver write disjoint parts of the buffer.

Optimized with the new pass manager (O3, loop and SLP vectorization;
floating-point adds and multiplies may contract into FMAs, nothing else of
fast-math) for the host CPU and its features, compiled by MCJIT, machine code
kept in the kernel cache directory (`JITLibrary`). IR names reach the IR text
only as sanitized value and block names (`_ident`); values are generated.
Kernels the lowering or the printer cannot handle raise `Unsupported` and run
with the interpreter (`CompiledModule.fallbacks`), exactly as for the C++
backend; a run whose kernel reports an error bit is redone by the interpreter.

Every decision about a kernel (placement by loop level, common subexpressions,
tables, skips, checked reads, the fused merge) is the target-neutral lowering's
(`codegen/schedule/kernel.py`, shared with the C++ backend); this package prints
its loop nest and runs it. The modules, each owning one thing:

| module | owns |
|---|---|
| `printer.py` | `NestPrinter`: a `nest.Kernel` as an LLVM function, node by node |
| `primitives.py` | the primitive operations of the nest (`nest.INTRINSICS`, `FILL_FUNCTIONS`) as instructions: a table |
| `emit.py` | LLVM IR building blocks: integer types, constants, identifiers, the contracting IRBuilder |
| `module.py` | a module's kernels lowered and printed into one LLVM module; `render`, `render_module`, `listing` |
| `driver.py` | `LLVMKernel`: a kernel's driver range in chunks over threads |
| `jit.py` | the target machine, `optimize`, the object cache (`JITLibrary`) |
"""

from .driver import CHUNKS_PER_THREAD, LLVMKernel
from .jit import JITLibrary, object_key, optimize
from .module import listing, render, render_module
from .primitives import LIBM_FUNCTIONS, LLVM_INTRINSICS, PRIMITIVES
from .printer import NestPrinter

__all__ = ["CHUNKS_PER_THREAD", "JITLibrary", "LIBM_FUNCTIONS", "LLVMKernel", "LLVM_INTRINSICS", "NestPrinter",
           "PRIMITIVES", "listing", "object_key", "optimize", "render", "render_module"]
