"""Compile time of the power spectrum with and without asking for gradients (lazy gradient kernels).

    .venv/bin/python benchmarks/bench_lazy_gradients.py [--backend cpp|llvm] [--repeats 2]

Each measurement runs in a new process with an empty kernel cache: `mtdsl.compile` of
`examples/soap_power_spectrum.mt` and its first call on two water molecules, once without
gradients (only the values' kernels are rendered and compiled) and once with
`gradients=["positions", "strain"]` (values and gradient kernels). Prints seconds and the ratio.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHILD = """
import time, ase
start = time.perf_counter()
import mtdsl
model = mtdsl.compile({path!r}, backend={backend!r})
water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])
model([water, water.copy()], gradients={gradients!r})
print(time.perf_counter() - start)
"""


def measure(backend: str, gradients) -> float:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, MTDSL_CACHE_DIR=cache)
        code = CHILD.format(path=str(ROOT / "examples" / "soap_power_spectrum.mt"), backend=backend,
                            gradients=gradients)
        result = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
        return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpp", choices=["cpp", "llvm"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    values = min(measure(args.backend, None) for _ in range(args.repeats))
    both = min(measure(args.backend, ["positions", "strain"]) for _ in range(args.repeats))
    print(f"power spectrum, {args.backend}, cold cache, compile + first call (best of {args.repeats}):")
    print(f"  without gradients: {values:.2f} s")
    print(f"  with positions and strain gradients: {both:.2f} s")
    print(f"  ratio without / with: {values / both:.2f}")


if __name__ == "__main__":
    main()
