"""The reference interpreter next to featomic on the 1,000-atom silicon power spectrum.

For information only: speed is the compiled backends' job (bench_soap.py). Both
run in this process, side by side; the ratio is interpreter time / featomic time.
Run: .venv/bin/python benchmarks/bench_interpreter.py
"""

import pathlib
import time

import ase.build
import featomic
import numpy as np

import mtdsl

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
HYPERS = {
    "cutoff": {"radius": 5.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
    "density": {"type": "Gaussian", "width": 0.3, "center_atom_weight": 1.0},
    "basis": {"type": "TensorProduct", "max_angular": 4, "radial": {"type": "Gto", "max_radial": 5},
              "spline_accuracy": 1e-12},
}


def best_of(function, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True) * (5, 5, 5)
    atoms.rattle(0.05, seed=0)
    model = mtdsl.compile(EXAMPLES / "soap_power_spectrum.mt", backend="interpreter")
    calculator = featomic.SoapPowerSpectrum(**HYPERS)
    model([atoms[:8]])  # build the radial spline once, like featomic's calculator construction
    ours = best_of(lambda: model([atoms]))
    theirs = best_of(lambda: calculator.compute(atoms))
    print(f"1,000-atom silicon power spectrum ({len(atoms)} atoms)")
    print(f"{'':24}{'time (s)':>10}")
    print(f"{'mtdsl interpreter':24}{ours:10.3f}")
    print(f"{'featomic':24}{theirs:10.3f}")
    print(f"ratio interpreter / featomic: {ours / theirs:.1f}x")


if __name__ == "__main__":
    np.random.seed(0)
    main()
