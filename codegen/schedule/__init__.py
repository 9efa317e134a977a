"""The middle of the code generator: decisions taken once, from the plan and the IR, for every backend.

`codegen/schedule/plan.py` schedules each kernel (loops, their order, guards, the fused
kernels); the modules here decide what the backends do inside that schedule,
each once for the C++ (`codegen/cpp/`) and LLVM (`codegen/llvm/`) backends:
which values are tabulated (`tabulation`), which product factors skip zero
Clebsch-Gordan coefficients (`factors`), which block accesses read an earlier
kernel's dense buffer (`grid`), the module's compile-time tables
(`tables`), and which kernels skip their absent points (`presence`). `passes.MIDDLE` names them in the order they apply.
`kernel` applies them while it lowers a kernel's plan to a complete loop nest (`nest`), which the
C++ backend prints; `--emit nest` shows it (`lower`). Before all of it, `parts` splits a
kernel whose body is several terms into a kernel per term (`first_terms`: IR to IR, the first
step of the one rendering, `codegen/build.py: rendering`).
"""
