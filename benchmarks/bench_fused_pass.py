"""The values and the gradient terms in one pass over pairs, against the kernels run apart.

    .venv/bin/python benchmarks/bench_fused_pass.py [--threads 1] [--repeats 9] [--atoms 1000]

`model(frames, gradients=["positions"])` of examples/spherical_expansion.mt and
examples/soap_power_spectrum.mt (rattled silicon, the examples' hypers), each backend,
with the fused kernel (`codegen/schedule/fuse.py`: the expansion's values and both its gradient
terms in one pass over the pairs) and without (`compiled.fuse = False`: the values'
kernel, then each term's scatter kernel), calls alternating in one process, best of
`--repeats`. Prints wall and process CPU time and the ratio fused / apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--atoms", type=int, default=1000, help="a multiple of 8")
    args = parser.parse_args()

    import ase.build

    import mtdsl

    repeat = round((args.atoms / 8) ** (1 / 3))
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True).repeat((repeat,) * 3)
    atoms.rattle(0.05, seed=1)
    examples = os.path.join(os.path.dirname(__file__), "..", "examples")
    print(f"{len(atoms)}-atom silicon, values + positions gradients, {args.threads} thread(s), "
          f"best of {args.repeats}")
    print(f"{'program':<22} {'backend':>7} {'fused (ms)':>11} {'apart (ms)':>11} {'ratio':>7} "
          f"{'fused CPU':>10} {'apart CPU':>10} {'CPU ratio':>10}")
    for program in ("spherical_expansion", "soap_power_spectrum"):
        for backend in ("cpp", "llvm"):
            model = mtdsl.compile(os.path.join(examples, program + ".mt"), backend=backend, threads=args.threads)
            model([atoms], gradients=["positions"])  # compiled, warm
            wall = {True: [], False: []}
            cpu = {True: [], False: []}
            for _ in range(args.repeats):
                for fuse in (True, False):
                    model.compiled.fuse = fuse
                    start, start_cpu = time.perf_counter(), time.process_time()
                    model([atoms], gradients=["positions"])
                    wall[fuse].append(time.perf_counter() - start)
                    cpu[fuse].append(time.process_time() - start_cpu)
            fused, apart = 1e3 * min(wall[True]), 1e3 * min(wall[False])
            fused_cpu, apart_cpu = 1e3 * min(cpu[True]), 1e3 * min(cpu[False])
            print(f"{program:<22} {backend:>7} {fused:>11.1f} {apart:>11.1f} {fused / apart:>6.2f}x "
                  f"{fused_cpu:>10.1f} {apart_cpu:>10.1f} {fused_cpu / apart_cpu:>9.2f}x")


if __name__ == "__main__":
    main()
