"""One LLVM kernel from several IR texts, A/B on the arguments of one real call, in one process.

    .venv/bin/python benchmarks/bench_llvm_ab.py PROGRAM.mt|convolution --dump A.ll [--gradients positions]
    .venv/bin/python benchmarks/bench_llvm_ab.py PROGRAM.mt|convolution SYMBOL A.ll B.ll [...]
        [--gradients positions] [--repeats 30]

`--dump` writes the LLVM IR of the program as this checkout compiles it (every kernel, the
gradient kernels included); run it in two checkouts (before and after a change), or edit a
copy by hand (how the LLVM backend's 11-13% slowdown of issue #15 was found). Each file
is LLVM IR holding the function `SYMBOL`. The program (`PROGRAM.mt` with only a systems input, or
`convolution`: `bench_convolution.py`'s e3nn convolution on 1,000 silicon atoms) is compiled
here with the llvm backend and called once on 1,000-atom rattled silicon (with `--gradients`,
for those gradients); where this tree's kernel `SYMBOL` runs, each file's function is
JIT-compiled by this tree's `codegen/llvm/jit.optimize` and called instead, alternately, on
the same arguments, over the whole driver range on one thread: prints the best and median
time of each and its ratio to the first. The files must take this tree's arguments in this
tree's order (`render_module(...).kernels[...].arrays` / `.scalars` say which).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", help="a .mt file with one systems input, or 'convolution'")
    parser.add_argument("symbol", nargs="?", help="the kernel's function, e.g. mt_kernel_0 or mt_fused_1")
    parser.add_argument("files", nargs="*", help="LLVM IR texts holding that function")
    parser.add_argument("--dump", help="write the compiled program's LLVM IR to this file and stop")
    parser.add_argument("--gradients", action="append", default=[], help="gradients asked of the call")
    parser.add_argument("--repeats", type=int, default=30)
    return parser.parse_args()


def convolution_call(atoms):
    """The compiled convolution and a call of it (`bench_convolution.py`'s inputs)."""
    import numpy as np

    import mtdsl
    from benchmarks.bench_convolution import Mtdsl
    from tests.test_e3nn_convolution import random_features, write_e3nn_program

    path = write_e3nn_program(tempfile.mkdtemp(prefix="bench_llvm_ab_"))
    wr = np.random.default_rng(1).normal(size=(8, 3, 3, 3, 16))
    model = Mtdsl(path, "llvm", np.float64, 1, {"wr": wr})
    model.h = random_features([atoms], 2, 16, seed=2)
    pairs = mtdsl.neighbors([atoms], 4.0)
    return model.compiled, lambda: model.compiled.run(model.bindings(pairs), threads=1)


def program_call(path, atoms, gradients):
    import mtdsl

    model = mtdsl.compile(path, backend="llvm")
    model.threads = 1
    return model.compiled, lambda: model([atoms], gradients=gradients) if gradients else model([atoms])


def main():
    arguments = parse()
    import llvmlite.binding as llvm
    import numpy as np

    from benchmarks._common import silicon
    from mtdsl.codegen.llvm.driver import _KERNEL_TYPE
    from mtdsl.codegen.llvm.jit import optimize

    atoms = silicon(1000)
    if arguments.program == "convolution":
        compiled, call = convolution_call(atoms)
    else:
        compiled, call = program_call(arguments.program, atoms, arguments.gradients)
    if arguments.dump:
        with open(arguments.dump, "w") as file:
            file.write(compiled.rendered.source)
        return
    if not arguments.symbol or not arguments.files:
        raise SystemExit("give a kernel's symbol and the IR files to compare (or --dump FILE)")
    kernel = getattr(compiled.library, arguments.symbol, None)
    if kernel is None:
        raise SystemExit(f"no kernel {arguments.symbol} in the compiled program")
    engines, functions = [], {}
    for path in arguments.files:
        parsed, machine = optimize(open(path).read())
        engine = llvm.create_mcjit_compiler(parsed, machine)
        engine.finalize_object()
        engines.append(engine)  # the functions' code lives as long as its engine
        address = engine.get_function_address(arguments.symbol)
        if not address:
            raise SystemExit(f"{path} has no function {arguments.symbol}")
        functions[path] = _KERNEL_TYPE(address)
    raw, measured = kernel.raw, []

    def alternate(arrays, scalars, lo, hi):
        if measured:  # the first call of the kernel only
            return raw(arrays, scalars, lo, hi)
        times = {path: [] for path in functions}
        errors = {}
        order = list(functions.items())
        for repeat in range(arguments.repeats):
            for path, function in (order if repeat % 2 == 0 else order[::-1]):
                start = time.perf_counter()
                errors[path] = function(arrays, scalars, lo, hi)
                times[path].append(time.perf_counter() - start)
        measured.append((times, errors))
        return raw(arrays, scalars, lo, hi)

    kernel.raw = alternate
    call()
    if not measured:
        raise SystemExit(f"the call did not run {arguments.symbol} (try --gradients)")
    times, errors = measured[0]
    first = min(times[arguments.files[0]])
    print(f"{arguments.symbol} of {arguments.program}, {arguments.repeats} calls each, alternated, 1 thread")
    for path in arguments.files:
        best = min(times[path])
        print(f"{os.path.basename(path):<40} best {best * 1e3:8.2f} ms  median {np.median(times[path]) * 1e3:8.2f} ms"
              f"  ratio {best / first:5.3f}  error bits {errors[path]}")


if __name__ == "__main__":
    main()
