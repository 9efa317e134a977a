"""The reference interpreter next to featomic on the 1,000-atom silicon power spectrum.

For information only: speed is the compiled backends' job (bench_soap.py). Both
run in this process, side by side; the ratio is interpreter time / featomic time.
Run: .venv/bin/python benchmarks/bench_interpreter.py
"""

import pathlib

import featomic
import numpy as np

import mtdsl
from _common import best_wall, silicon, soap_hypers

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
HYPERS = soap_hypers(cutoff=5.0, n_radial=6, max_angular=4, width=0.3, center_atom_weight=1.0)


def main():
    atoms = silicon(1000)
    model = mtdsl.compile(EXAMPLES / "soap_power_spectrum.mt", backend="interpreter")
    calculator = featomic.SoapPowerSpectrum(**HYPERS)
    model([atoms[:8]])  # build the radial spline once, like featomic's calculator construction
    ours = best_wall(lambda: model([atoms]), 3)
    theirs = best_wall(lambda: calculator.compute(atoms), 3)
    print(f"1,000-atom silicon power spectrum ({len(atoms)} atoms)")
    print(f"{'':24}{'time (s)':>10}")
    print(f"{'mtdsl interpreter':24}{ours:10.3f}")
    print(f"{'featomic':24}{theirs:10.3f}")
    print(f"ratio interpreter / featomic: {ours / theirs:.1f}x")


if __name__ == "__main__":
    np.random.seed(0)
    main()
