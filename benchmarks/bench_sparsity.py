"""The power spectrum's blocks, samples and time against featomic, side by side in one run.

    .venv/bin/python benchmarks/bench_sparsity.py [--threads 2] [--repeats 3] [--before /work/main ...] [--energy]

Two datasets: the 162 molecules of ASE's `g2` collection (14 elements: most
species pairs never meet, the usual shape of a molecular training set) as one
batch, and 1,000-atom silicon (`ase.build.bulk("Si", cubic=True) * (5, 5, 5)`,
rattled). For each, examples/soap_power_spectrum.mt (cpp backend; cutoff 5,
6 radial functions, max_angular 4, Gaussian width 0.3, featomic's default
central-atom weight 1) against `featomic.SoapPowerSpectrum` with the same
hypers (spline_accuracy 1e-12), both on the same threads: the values, then the
values and their positions gradients. Prints our blocks and stored values
(the entries of the value blocks) against featomic's, and the time ratio
mtdsl / featomic (best of `--repeats` calls; ours includes the batch, the
neighbour list, the kernels and the assembly, featomic's its neighbour list).

`--before DIR` runs the same measurement of our side with the checkout at DIR
(its `.venv/bin/python`, today's `main` for the before figure) in the same
sitting, and prints both; repeat it for several checkouts. Each of our runs,
this checkout's included, is a process of its own (not featomic's).
`--energy` also times examples/soap_energy.mt (zero weights) with forces, ours
only (reverse products past 32 atoms: runtime/model.py), on each dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", action="append", default=[],
                        help="a checkout of mtdsl to measure as well (its .venv/bin/python); may be repeated")
    parser.add_argument("--energy", action="store_true",
                        help="also time examples/soap_energy.mt with forces (ours only: reverse products)")
    parser.add_argument("--ours-only", help=argparse.SUPPRESS)  # a checkout to import mtdsl from; JSON out
    return parser.parse_args()


ARGS = parse() if __name__ == "__main__" else None
if ARGS is not None:
    os.environ["RAYON_NUM_THREADS"] = str(ARGS.threads)
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    sys.path.insert(0, ARGS.ours_only or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

HYPERS = {
    "cutoff": {"radius": 5.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
    "density": {"type": "Gaussian", "width": 0.3, "center_atom_weight": 1.0},
    "basis": {"type": "TensorProduct", "max_angular": 4, "radial": {"type": "Gto", "max_radial": 5},
              "spline_accuracy": 1e-12},
}


def molecules():
    from ase.collections import g2

    return [atoms.copy() for atoms in g2]


def silicon():
    import ase.build

    atoms = ase.build.bulk("Si", cubic=True) * (5, 5, 5)
    atoms.rattle(0.05, seed=0)
    return [atoms]


DATASETS = {"g2 molecules": molecules, "silicon 1000": silicon}


def best(function, repeats: int) -> tuple[float, object]:
    result, times = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def stored(tensor) -> tuple[int, int]:
    """(blocks, entries of the value blocks)."""
    return len(tensor), sum(int(np.prod(block.values.shape)) for block in tensor.blocks())


def measure_ours(repeats: int, threads: int, root: str) -> dict:
    import mtdsl

    path = os.path.join(root, "examples", "soap_power_spectrum.mt")
    text = open(os.path.join(root, "examples", "spherical_expansion.mt")).read()
    hypers = {"center_atom_weight": 1.0} if "center_atom_weight" in text else {}
    model = mtdsl.compile(path, backend="cpp", threads=threads, **hypers)
    result = {}
    for name, make in DATASETS.items():
        frames = make()
        model(frames)  # compiles the kernels, warms the caches
        values, out = best(lambda: model(frames)["ps"], repeats)
        model(frames, gradients=["positions"])
        gradients, _ = best(lambda: model(frames, gradients=["positions"])["ps"], repeats)
        result[name] = {"values": values, "gradients": gradients, "stored": stored(out),
                        "weight": hypers.get("center_atom_weight", 0.0)}
        if ARGS.energy:  # the energy over the power spectrum (zero weights), with forces
            species = sorted({int(z) for atoms in frames for z in atoms.numbers})
            energy = mtdsl.compile(os.path.join(root, "examples", "soap_energy.mt"), backend="cpp",
                                   threads=threads, species=species, **hypers)
            energy(frames, gradients=["positions"])
            result[name]["energy"], _ = best(lambda: energy(frames, gradients=["positions"]), repeats)
    return result


def measure_featomic(repeats: int) -> dict:
    import featomic

    calculator = featomic.SoapPowerSpectrum(**HYPERS)
    result = {}
    for name, make in DATASETS.items():
        frames = make()
        calculator.compute(frames)
        values, out = best(lambda: calculator.compute(frames), repeats)
        gradients, _ = best(lambda: calculator.compute(frames, gradients=["positions"]), repeats)
        result[name] = {"values": values, "gradients": gradients, "stored": stored(out)}
    return result


def main():
    if ARGS.ours_only:
        print(json.dumps(measure_ours(ARGS.repeats, ARGS.threads, ARGS.ours_only)))
        return
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    theirs = measure_featomic(ARGS.repeats)
    # every mtdsl run in a process of its own, this checkout's too: in featomic's process, its
    # thread pool competed with ours (silicon values measured 0.032 s there, 0.015 s apart)
    runs = {}
    for label, checkout in [("mtdsl", root)] + [(f"before ({b})", b) for b in ARGS.before]:
        python = os.path.join(checkout, ".venv", "bin", "python")
        output = subprocess.run([python, os.path.abspath(__file__), "--threads", str(ARGS.threads),
                                 "--repeats", str(ARGS.repeats), "--ours-only", os.path.abspath(checkout)]
                                + (["--energy"] if ARGS.energy else []),
                                check=True, capture_output=True, text=True).stdout
        runs[label] = json.loads(output.strip().splitlines()[-1])
    print(f"power spectrum, cpp backend, {ARGS.threads} threads, best of {ARGS.repeats}; "
          "ratios are mtdsl / featomic")
    header = f"{'dataset':<14} {'run':<22} {'blocks':>13} {'stored values':>26} {'values s':>15} {'+ gradients s':>17}"
    print(header)
    for name in DATASETS:
        reference = theirs[name]
        blocks, entries = reference["stored"]
        print(f"{name:<14} {'featomic':<22} {blocks:>13} {entries:>26,} {reference['values']:>15.3f} "
              f"{reference['gradients']:>17.3f}")
        for run, result in runs.items():
            mine = result[name]
            b, e = mine["stored"]
            print(f"{name:<14} {run[:22]:<22} {b:>6} ({b / blocks:4.2f}x) {e:>16,} ({e / entries:5.2f}x) "
                  f"{mine['values']:>7.3f} ({mine['values'] / reference['values']:4.2f}x) "
                  f"{mine['gradients']:>8.3f} ({mine['gradients'] / reference['gradients']:4.2f}x)"
                  + (f"   energy + forces {mine['energy']:.3f} s" if "energy" in mine else ""))


if __name__ == "__main__":
    main()
