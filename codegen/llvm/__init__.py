"""The LLVM backend: loop IR -> LLVM IR through `llvmlite.ir.IRBuilder`, then JIT.

The same plan as the C++ backend (`codegen/plan.py`), the same argument
descriptors and dense body buffer (`runtime/compiled.py` resolves and
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
Kernels the plan or this renderer cannot handle raise `Unsupported` and run
with the interpreter (`CompiledModule.fallbacks`), exactly as for the C++
backend; a run whose kernel reports an error bit is redone by the interpreter.

The modules, each owning one thing:

| module | owns |
|---|---|
| `emit.py` | LLVM IR building blocks: constants, names, placed values, loop levels |
| `kernel.py` | the kernel walk `KernelBuilder`: placement by level, CSE, loops, sums, tabulation |
| `reads.py` | what a kernel reads: fields, gradient rows, parameters, block accesses, grids |
| `calls.py` | the built-in functions (`LLVM_INTRINSICS`, `LIBM_FUNCTIONS`, special functions) |
| `printer.py` | the printer of the loop-nest IR (`codegen/schedule/nest.py`) |
| `module.py` | a module's kernels as one LLVM module; `render`, `render_module` |
| `driver.py` | `LLVMKernel`: a kernel's driver range in chunks over threads |
| `jit.py` | the target machine, `optimize`, the object cache (`JITLibrary`), `build` |
"""

from .calls import LIBM_FUNCTIONS, LLVM_INTRINSICS
from .driver import CHUNKS_PER_THREAD, LLVMKernel
from .jit import JITLibrary, build, object_key, optimize
from .kernel import KernelBuilder
from .module import ModuleRenderer, render, render_module

__all__ = ["CHUNKS_PER_THREAD", "JITLibrary", "KernelBuilder", "LIBM_FUNCTIONS", "LLVMKernel", "LLVM_INTRINSICS",
           "ModuleRenderer", "build", "object_key", "optimize", "render", "render_module"]
