"""The reference interpreter with and without skipping absent blocks, on a many-species batch.

    .venv/bin/python benchmarks/bench_interpreter_blocks.py [--repeats 3] [--max-angular 4] [--n-radial 6]

The 162 molecules of ASE's `g2` collection (14 elements) as one batch, `backend="interpreter"`:
examples/soap_power_spectrum.mt and examples/spherical_expansion.mt, each timed as
`model(frames)` (best of `--repeats`) with runtime/evaluate/present_blocks.py on (a kernel's
body over the key points of its present blocks) and off (the dense grid of its key
variables), in the same process; checks that both give the same TensorMaps bit for bit
and prints the ratio skipped / dense.
"""

import argparse
import pathlib
import time

import numpy as np
from ase.collections import g2

import mtdsl
from mtdsl.runtime.evaluate import present_blocks

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def best_of(function, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def identical(first, second) -> bool:
    return all(
        first[name].keys == second[name].keys and all(
            a.samples == b.samples and np.array_equal(np.asarray(a.values), np.asarray(b.values))
            for a, b in zip(first[name].blocks(), second[name].blocks()))
        for name in first)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-angular", type=int, default=4)
    parser.add_argument("--n-radial", type=int, default=6)
    args = parser.parse_args()
    frames = [atoms.copy() for atoms in g2]
    print(f"g2: {len(frames)} molecules, {sum(len(a) for a in frames)} atoms, interpreter")
    for example in ("soap_power_spectrum", "spherical_expansion"):
        model = mtdsl.compile(EXAMPLES / f"{example}.mt", backend="interpreter",
                              max_angular=args.max_angular, n_radial=args.n_radial)
        model(frames)  # warm: imports, first allocations
        present_blocks.SKIP_ABSENT_BLOCKS = True
        skipped, out_skipped = best_of(lambda: model(frames), args.repeats)
        present_blocks.SKIP_ABSENT_BLOCKS = False
        dense, out_dense = best_of(lambda: model(frames), args.repeats)
        present_blocks.SKIP_ABSENT_BLOCKS = True
        blocks = sum(len(t) for t in out_skipped.values())
        print(f"{example:22s} {blocks:4d} blocks  skip absent blocks {skipped:7.3f} s  dense grid {dense:7.3f} s  "
              f"ratio {skipped / dense:.2f}  bit-identical: {identical(out_skipped, out_dense)}")


if __name__ == "__main__":
    main()
