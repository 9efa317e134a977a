"""mtdsl against metatensor-core, side by side in one run: `.mts` I/O, Labels and keys_to_*.

    .venv/bin/python benchmarks/bench_mts.py [--repeats N] [--blocks 20] [--samples 2500]

The TensorMap has 20 blocks (keys o3_lambda x center_type) of 2500 samples x 3
components x 50 properties in float64, each with a positions gradient (two gradient
rows per sample: the atom itself and a neighbour). Every timing is the minimum over
`--repeats` runs, alternating the two libraries; the ratio is ours / theirs (lower is
better: below 1.0 mtdsl is faster). Files go to a temporary directory (page cache).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import metatensor
import metatensor.io as mtio
import numpy as np

import mtdsl
from mtdsl import Labels, TensorBlock, TensorMap
from mtdsl.io import mts
from _common import best_wall


def build(n_blocks: int, n_samples: int, n_components: int = 3, n_properties: int = 50) -> TensorMap:
    rng = np.random.default_rng(0)
    n_atoms = 25
    keys = Labels(["o3_lambda", "center_type"], np.array([[i % 4, i // 4] for i in range(n_blocks)], dtype=np.int32))
    samples = Labels(["system", "atom"], np.stack([np.arange(n_samples) // n_atoms, np.arange(n_samples) % n_atoms],
                                                  axis=1).astype(np.int32))
    rows = np.repeat(np.arange(n_samples), 2)
    neighbour = (samples.array[rows, 1] + np.tile([0, 1], n_samples)) % n_atoms
    gradient_samples = Labels(["sample", "system", "atom"],
                              np.stack([rows, samples.array[rows, 0], neighbour], axis=1).astype(np.int32))
    component = Labels.range("o3_mu", n_components)
    xyz = Labels.range("xyz", 3)
    properties = Labels.range("n", n_properties)
    blocks = []
    for _ in range(n_blocks):
        block = TensorBlock(rng.standard_normal((n_samples, n_components, n_properties)), samples, [component],
                            properties)
        block.add_gradient("positions", TensorBlock(
            rng.standard_normal((len(gradient_samples), 3, n_components, n_properties)), gradient_samples,
            [xyz, component], properties))
        blocks.append(block)
    return TensorMap(keys, blocks)


def side_by_side(ours, theirs, repeats: int) -> tuple[float, float]:
    """Minimum times of both, measured alternately so that both see the same machine state."""
    ours_times, theirs_times = [], []
    for _ in range(repeats):
        ours_times.append(best_wall(ours, 1))
        theirs_times.append(best_wall(theirs, 1))
    return min(ours_times), min(theirs_times)


def labels_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two n-row label arrays (system, atom, cell) sharing half of their rows."""
    rng = np.random.default_rng(seed)
    rows = np.unique(rng.integers(0, 1000, size=(3 * n, 3), dtype=np.int32), axis=0)
    rows = rows[rng.permutation(len(rows))][: int(1.5 * n)]
    return rows[:n].copy(), rows[n // 2 : n // 2 + n].copy()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--samples", type=int, default=2500)
    arguments = parser.parse_args()
    repeats = arguments.repeats

    ours_tensor = build(arguments.blocks, arguments.samples)
    theirs_tensor = ours_tensor.to_metatensor()
    results = []

    with tempfile.TemporaryDirectory() as directory:
        ours_path = os.path.join(directory, "ours.mts")
        theirs_path = os.path.join(directory, "theirs.mts")
        results.append(("save", *side_by_side(lambda: mts.save(ours_path, ours_tensor),
                                              lambda: metatensor.save(theirs_path, theirs_tensor), repeats)))
        size = os.path.getsize(ours_path)
        identical = open(ours_path, "rb").read() == open(theirs_path, "rb").read()
        results.append(("load", *side_by_side(lambda: mts.load(ours_path), lambda: metatensor.load(theirs_path),
                                              repeats)))
        results.append(("load, mmap=True, verify=False (vs their load)",
                        *side_by_side(lambda: mts.load(ours_path, mmap=True, verify=False),
                                      lambda: metatensor.load(theirs_path), repeats)))
        results.append(("load, mmap=True (CRCs verified, vs their load)",
                        *side_by_side(lambda: mts.load(ours_path, mmap=True), lambda: metatensor.load(theirs_path),
                                      repeats)))
        results.append(("save_buffer", *side_by_side(lambda: mts.save_buffer(ours_tensor),
                                                     lambda: mtio.save_buffer(theirs_tensor), repeats)))
        ours_buffer, theirs_buffer = mts.save_buffer(ours_tensor), mtio.save_buffer(theirs_tensor)
        results.append(("load_buffer", *side_by_side(lambda: mts.load_buffer(ours_buffer),
                                                     lambda: mtio.load_buffer(theirs_buffer), repeats)))
        del ours_buffer, theirs_buffer
        # a deflated file (as metatensor ships its test data), both libraries reading the same file
        deflated_path = os.path.join(directory, "deflated.mts")
        mts.save(deflated_path, ours_tensor, compress=True)
        results.append(("load, deflated members", *side_by_side(lambda: mts.load(deflated_path),
                                                                lambda: metatensor.load(deflated_path), repeats)))

    # Labels: position() over 100k rows, 10k lookups of present entries
    first, second = labels_pair(100_000, 1)
    lookups = [tuple(row) for row in first[np.random.default_rng(2).choice(len(first), 10_000)].tolist()]
    ours_labels = Labels(["system", "atom", "cell"], first)
    theirs_labels = metatensor.Labels(["system", "atom", "cell"], first)
    ours_labels.position(lookups[0])  # the hash table is built on first use; metatensor builds it on creation
    results.append(("Labels.position x 10k (100k rows)",
                    *side_by_side(lambda: [ours_labels.position(e) for e in lookups],
                                  lambda: [theirs_labels.position(e) for e in lookups], repeats)))
    results.append(("Labels(...) creation, 100k rows",
                    *side_by_side(lambda: Labels(["system", "atom", "cell"], first),
                                  lambda: metatensor.Labels(["system", "atom", "cell"], first), repeats)))
    ours_other = Labels(["system", "atom", "cell"], second)
    theirs_other = metatensor.Labels(["system", "atom", "cell"], second)
    results.append(("Labels.union (100k + 100k rows)",
                    *side_by_side(lambda: ours_labels.union(ours_other), lambda: theirs_labels.union(theirs_other),
                                  repeats)))
    results.append(("Labels.intersection (100k, 100k rows)",
                    *side_by_side(lambda: ours_labels.intersection(ours_other),
                                  lambda: theirs_labels.intersection(theirs_other), repeats)))
    results.append(("union_and_mapping", *side_by_side(lambda: ours_labels.union_and_mapping(ours_other),
                                                       lambda: theirs_labels.union_and_mapping(theirs_other),
                                                       repeats)))
    # the same from fresh Labels: creation (and our lazily built sorted index) included
    names = ["system", "atom", "cell"]
    results.append(("Labels x2 + union, fresh",
                    *side_by_side(lambda: Labels(names, first).union(Labels(names, second)),
                                  lambda: metatensor.Labels(names, first).union(metatensor.Labels(names, second)),
                                  repeats)))
    results.append(("Labels x2 + intersection, fresh",
                    *side_by_side(lambda: Labels(names, first).intersection(Labels(names, second)),
                                  lambda: metatensor.Labels(names, first).intersection(metatensor.Labels(names, second)),
                                  repeats)))

    # keys_to_samples / keys_to_properties on the benchmark TensorMap
    results.append(("keys_to_samples('center_type')",
                    *side_by_side(lambda: ours_tensor.keys_to_samples("center_type"),
                                  lambda: theirs_tensor.keys_to_samples("center_type"), repeats)))
    results.append(("keys_to_properties('center_type')",
                    *side_by_side(lambda: ours_tensor.keys_to_properties("center_type"),
                                  lambda: theirs_tensor.keys_to_properties("center_type"), repeats)))

    print(f"mtdsl {mtdsl.__version__} vs metatensor-core {metatensor.__version__}; "
          f"TensorMap {arguments.blocks} blocks x {arguments.samples} samples x 3 x 50 float64 + positions "
          f"gradients, file {size / 1e6:.0f} MB (bytes identical: {identical}); min of {repeats} runs")
    print()
    print(f"| {'operation':<38} | {'mtdsl (ms)':>10} | {'metatensor (ms)':>15} | {'ratio':>6} |")
    print(f"|{'-' * 40}|{'-' * 11}:|{'-' * 16}:|{'-' * 7}:|")
    for name, ours_time, theirs_time in results:
        print(f"| {name:<38} | {1e3 * ours_time:>10.2f} | {1e3 * theirs_time:>15.2f} | {ours_time / theirs_time:>6.3f} |")


if __name__ == "__main__":
    main()
