"""SOAP values with the cpp and llvm backends against featomic, side by side in one run.

    .venv/bin/python benchmarks/bench_soap.py [--threads 2] [--repeats 5] [--big 8000] [--gradients-only]

1,000-atom silicon (`ase.build.bulk("Si", cubic=True) * (5, 5, 5)`, rattled),
cutoff 5, 6 radial functions, max_angular 4, Gaussian width 0.3: the spherical
expansion and the power spectrum (values only) compiled from
examples/spherical_expansion.mt and examples/soap_power_spectrum.mt, mtdsl's cpp
and llvm backends against
`featomic.SphericalExpansion` / `featomic.SoapPowerSpectrum` with the same
hypers (spline_accuracy 1e-12, center_atom_weight 1 as the examples), both on the same number
of threads. Our time is the whole call: batch, neighbour list, kernels and
TensorMap assembly (featomic's includes its neighbour list too); then the
values and their positions gradients (`model(frames, gradients=["positions"])`,
the gradient kernels compiled with the values, `mtdsl/ir/passes/terms.py`) against
`compute(..., gradients=["positions"])` (must be <= 1.0, goal 0.25). Prints the
ratio mtdsl / featomic (must be <= 1.0, goal 0.5) of wall-clock and of
process CPU time (all threads), the time per atom at 1,000
and 8,000 atoms, and the speed-up from 1 to 2 threads.

The thread counts are set before featomic is imported (RAYON_NUM_THREADS) and
given to our kernels explicitly.
"""

from __future__ import annotations

import os
import sys

from _common import pin_threads, side_by_side, silicon, soap_hypers, timing_parser


def parse():
    parser = timing_parser(__doc__, repeats=5)
    parser.add_argument("--big", type=int, default=8000, help="atoms of the scaling run (a multiple of 8)")
    parser.add_argument("--gradients-only", action="store_true",
                        help="stop after the values and gradients tables (no scaling runs)")
    return parser.parse_args()


ARGS = parse() if __name__ == "__main__" else None
if ARGS is not None:
    pin_threads(ARGS.threads)


sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mtdsl  # noqa: E402
from mtdsl.compile import check_and_lower  # noqa: E402
from mtdsl.runtime.bindings import Bindings  # noqa: E402
from mtdsl.runtime.native.compiled import compile_module  # noqa: E402
from mtdsl.systems import as_batch, neighbors  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
BACKENDS = ("cpp", "llvm")

HYPERS = soap_hypers(cutoff=5.0, n_radial=6, max_angular=4, width=0.3, center_atom_weight=1.0)


def best(function, repeats: int) -> float:
    """The best wall time of ``function``."""
    return side_by_side([function], repeats)[0][0]


def ours(compiled, atoms, threads):
    module = compiled.module

    def call():
        batch = as_batch([atoms])
        pairs = {p.name: neighbors(batch, p.cutoff, full=p.full) for p in module.pairs}
        return compiled.run(Bindings({"S": batch}, pairs, {}), threads=threads)

    return call


def main():
    import featomic

    threads, repeats = ARGS.threads, ARGS.repeats
    programs = {"spherical expansion": ("spherical_expansion.mt", featomic.SphericalExpansion(**HYPERS)),
                "power spectrum": ("soap_power_spectrum.mt", featomic.SoapPowerSpectrum(**HYPERS))}
    compiled = {}
    for name, (program, _) in programs.items():
        module = check_and_lower(os.path.join(EXAMPLES, program))[1]
        for backend in BACKENDS:
            compiled[name, backend] = compile_module(module, backend=backend)
    calculators = {name: (compiled[name, "cpp"], calculator) for name, (_, calculator) in programs.items()}

    atoms = silicon(1000)
    print(f"1,000-atom silicon, cutoff 5, 6 radial, max_angular 4, width 0.3; {threads} threads, best of {repeats}")
    print(f"{'calculation':<22}{'backend':>8}{'mtdsl (ms)':>12}{'featomic (ms)':>16}{'ratio':>8}"
          f"{'mtdsl CPU':>11}{'featomic CPU':>14}{'CPU ratio':>11}")
    for name, (_, calculator) in programs.items():
        for backend in BACKENDS:
            (mine, mine_cpu), (theirs, theirs_cpu) = side_by_side(
                [ours(compiled[name, backend], atoms, threads), lambda: calculator.compute(atoms)], repeats)
            print(f"{name:<22}{backend:>8}{mine * 1e3:>12.1f}{theirs * 1e3:>16.1f}{mine / theirs:>7.2f}x"
                  f"{mine_cpu * 1e3:>11.1f}{theirs_cpu * 1e3:>14.1f}{mine_cpu / theirs_cpu:>10.2f}x")
    print("(wall: what a user waits; CPU: process time of all threads, steadier on a loaded machine)")

    print()
    print("values + positions gradients: model(frames, gradients=['positions']) against "
          "compute(..., gradients=['positions'])")
    print(f"{'calculation':<22}{'backend':>8}{'mtdsl (ms)':>12}{'featomic (ms)':>16}{'ratio':>8}"
          f"{'mtdsl CPU':>11}{'featomic CPU':>14}{'CPU ratio':>11}")
    for name, (program, calculator) in programs.items():
        for backend in BACKENDS:
            model = mtdsl.compile(os.path.join(EXAMPLES, program), backend=backend)
            model.threads = threads
            (mine, mine_cpu), (theirs, theirs_cpu) = side_by_side(
                [lambda: model([atoms], gradients=["positions"]),
                 lambda: calculator.compute(atoms, gradients=["positions"])], repeats)
            print(f"{name:<22}{backend:>8}{mine * 1e3:>12.1f}{theirs * 1e3:>16.1f}{mine / theirs:>7.2f}x"
                  f"{mine_cpu * 1e3:>11.1f}{theirs_cpu * 1e3:>14.1f}{mine_cpu / theirs_cpu:>10.2f}x")
    if ARGS.gradients_only:
        return

    print()
    big = silicon(ARGS.big, seed=1)
    print(f"{'time per atom (us)':<22}{'1,000 atoms':>14}{f'{ARGS.big:,} atoms':>14}{'ratio':>8}")
    for name, (compiled, _) in calculators.items():
        small_time = best(ours(compiled, atoms, threads), repeats) / 1000
        big_time = best(ours(compiled, big, threads), max(1, repeats // 2)) / ARGS.big
        print(f"{name:<22}{small_time * 1e6:>14.2f}{big_time * 1e6:>14.2f}{big_time / small_time:>7.2f}x")
    small_nl = best(lambda: neighbors(as_batch([atoms]), 5.0), repeats) / 1000
    big_nl = best(lambda: neighbors(as_batch([big]), 5.0), max(1, repeats // 2)) / ARGS.big
    print(f"{'  of which neighbours':<22}{small_nl * 1e6:>14.2f}{big_nl * 1e6:>14.2f}{big_nl / small_nl:>7.2f}x"
          "  (mtdsl.systems.neighbors: batch, vesin, CSR, pair vectors)")

    print()
    print(f"{'speed-up, 1 -> 2 threads':<26}{'mtdsl cpp':>10}")
    for name, (compiled, _) in calculators.items():
        (one, _), (two, _) = side_by_side([ours(compiled, atoms, 1), ours(compiled, atoms, 2)], repeats)
        print(f"{name:<26}{one / two:>7.2f}x")


if __name__ == "__main__":
    main()
