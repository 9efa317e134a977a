"""Time the `.mt` front end: parse, resolve, dimension and equivariance checks.

    .venv/bin/python benchmarks/bench_frontend.py [--repeats 5] [--lines 5000]

Prints the best wall-clock time (and the CPU time, which a busy machine
inflates less) of `mtdsl.lang.check` (everything `mtdsl check` does but
printing) for each reference program of `examples/` (target: under 50 ms each)
and for a generated program of about 5,000 lines (target: under 1 s).  The
one-time construction of the LALR parser is excluded from the per-file figures
and printed on its own line; the checker's caches (compiled conditions,
memoized answers about index values) are cleared before every timed run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from mtdsl.lang import check
from mtdsl.lang.evaluate import clear_caches
from mtdsl.lang.parse import lark_parser

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ["spherical_expansion.mt", "soap_power_spectrum.mt", "soap_energy.mt", "equivariant_convolution.mt"]

HEADER = """\
model generated

hyper cutoff = 5.0
hyper n_radial = 6
hyper lmax = 3

input S : systems
pairs P = neighbors(S, cutoff = cutoff)

dim angular = range(lmax + 1)
dim species = species(S)

index l, l1, l2, L : angular
index m : irrep(l)
index m1 : irrep(l1)
index m2 : irrep(l2)
index M : irrep(L)
index i : atoms(S)
index b : species
index p : P
"""

BLOCK = """
dim radial_{k} = range(n_radial)
index n_{k}, n1_{k} : radial_{k}
param w_{k}[n_{k}, l] ~ normal(0.0, 1.0)
let g_{k}[p, n_{k}] = gto(P.distance[p], n_{k}, width = 0.5) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor t_{k}
    keys       (o3_lambda = l, o3_sigma = 1, center_type = S.type[i], neighbor_type = b)
    samples    (i)
    components (o3_mu = m)
    properties (n_{k})
  = sum(p in P.from(i) where S.type[P.second[p]] == b)
        w_{k}[n_{k}, l] * g_{k}[p, n_{k}] * sph(P.vector[p], l, m)

tensor c_{k}
    keys       (o3_lambda = L, o3_sigma = 1)
    samples    (i)
    components (o3_mu = M)
  = sum(p in P.from(i)) sum(l1, l2, m1, m2 where (l1 + l2 + L) % 2 == 0)
        cg(l1, m1, l2, m2, L, M) * sph(P.vector[p], l1, m1) * sph(P.vector[p], l2, m2)

output t_{k} with gradients(positions), c_{k}
"""


def generated_program(lines: int) -> str:
    parts = [HEADER]
    count = HEADER.count("\n")
    k = 0
    while count < lines:
        block = BLOCK.format(k=k)
        parts.append(block)
        count += block.count("\n")
        k += 1
    return "".join(parts)


def best_time(path: str, repeats: int) -> tuple[float, float, list]:
    """Best wall-clock and best CPU time (of this process) of `check(path)`."""
    best_wall = best_cpu = float("inf")
    diagnostics: list = []
    for _ in range(repeats):
        clear_caches()  # no answers remembered from the previous run: each run is a cold check
        start, start_cpu = time.perf_counter(), time.process_time()
        diagnostics = check(path)
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best_wall, best_cpu, diagnostics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lines", type=int, default=5000)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    lark_parser()
    print(f"{'LALR parser construction (once per process)':<40} {1e3 * (time.perf_counter() - start):7.1f} ms")

    failed = False
    print(f"{'program':<40} {'wall':>10} {'cpu':>10}    target")
    for name in REFERENCE:
        seconds, cpu, diagnostics = best_time(str(ROOT / "examples" / name), args.repeats)
        ok = seconds < 0.050 and not diagnostics
        failed |= not ok
        print(f"{name:<40} {1e3 * seconds:7.1f} ms {1e3 * cpu:7.1f} ms  < 50 ms  {'ok' if ok else 'MISSED'}")
    with tempfile.TemporaryDirectory() as directory:
        text = generated_program(args.lines)
        path = Path(directory) / "generated.mt"
        path.write_text(text)
        seconds, cpu, diagnostics = best_time(str(path), max(1, args.repeats // 2))
        lines = text.count("\n")
        ok = seconds < 1.0 and not diagnostics
        failed |= not ok
        label = f"generated ({lines} lines)"
        print(f"{label:<40} {1e3 * seconds:7.1f} ms {1e3 * cpu:7.1f} ms  < 1 s    {'ok' if ok else 'MISSED'}")
        for diagnostic in diagnostics[:5]:
            print(f"  {diagnostic}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
