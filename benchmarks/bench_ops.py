"""Time mtdsl.ops against metatensor-operations, in the same run, on the same data.

    .venv/bin/python benchmarks/bench_ops.py [--repeats 7] [--quick]

Data: 20 blocks (keys o3_lambda x center_type = 5 x 4) of 2500 samples
(100 systems x 25 atoms) x 50 properties, float64 numpy, with positions
gradients (two rows per sample: the atom and its neighbour, x 3 directions).
Each line prints the best time of each library and the ratio mtdsl / metatensor
(below 1.0 means mtdsl is faster). Inputs are converted before timing.
"""

from __future__ import annotations

import argparse
import time

import metatensor
import metatensor.operations as mts
import numpy as np

import mtdsl.ops as ops
from mtdsl import Labels, TensorBlock, TensorMap


def make_tensor(n_systems=100, n_atoms=25, n_properties=50, seed=0, system_offset=0) -> TensorMap:
    rng = np.random.default_rng(seed)
    keys = Labels(["o3_lambda", "center_type"], np.array([[l, c] for l in range(5) for c in (1, 6, 7, 8)]))
    system = np.repeat(np.arange(n_systems), n_atoms) + system_offset
    atom = np.tile(np.arange(n_atoms), n_systems)
    n = len(system)
    samples = Labels(["system", "atom"], np.stack([system, atom], axis=1))
    properties = Labels.range("n", n_properties)
    g_rows = np.concatenate(
        [np.stack([np.arange(n), system, atom], axis=1), np.stack([np.arange(n), system, (atom + 1) % n_atoms], axis=1)]
    )
    g_rows = g_rows[np.lexsort(g_rows.T[::-1])]
    g_samples = Labels(["sample", "system", "atom"], g_rows)
    xyz = Labels.range("xyz", 3)
    blocks = []
    for _ in range(len(keys)):
        block = TensorBlock(rng.standard_normal((n, n_properties)), samples, [], properties)
        block.add_gradient("positions", TensorBlock(rng.standard_normal((len(g_rows), 3, n_properties)), g_samples,
                                                    [xyz], properties))
        blocks.append(block)
    return TensorMap(keys, blocks)


def best_pair(ours, theirs, repeats: int) -> tuple[float, float]:
    """Best times of two functions, run alternately so that both see the same machine state."""
    ours(), theirs()  # warm up
    times_ours, times_theirs = [], []
    for _ in range(repeats):
        for function, times in ((ours, times_ours), (theirs, times_theirs)):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    return min(times_ours), min(times_theirs)


def weights_like(tensor: TensorMap, n_out=8) -> TensorMap:
    rng = np.random.default_rng(1)
    blocks = [TensorBlock(rng.standard_normal((n_out, len(b.properties))), Labels.range("out", n_out), [], b.properties)
              for b in tensor.blocks()]
    return TensorMap(tensor.keys, blocks)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke test")
    args = parser.parse_args()
    n_systems = 20 if args.quick else 100
    n_small = 100 if args.quick else 1000

    tensor = make_tensor(n_systems)
    # a copy with its own Labels objects, so that equal_metadata compares arrays
    twin = TensorMap.from_metatensor(tensor.to_metatensor())
    weights = weights_like(tensor)
    half = n_systems // 2
    first_half = Labels(["system"], np.arange(half).reshape(-1, 1))
    second_half = Labels(["system"], np.arange(half, n_systems).reshape(-1, 1))
    selections = [Labels(["system"], np.arange(i, i + n_systems // 10).reshape(-1, 1))
                  for i in range(0, n_systems, n_systems // 10)]
    halves = ops.split(tensor, "samples", [first_half, second_half])
    small = [make_tensor(1, 10, seed=i, system_offset=i) for i in range(n_small)]

    m_tensor, m_twin, m_weights = tensor.to_metatensor(), twin.to_metatensor(), weights.to_metatensor()
    m_halves = [h.to_metatensor() for h in halves]
    m_small = [s.to_metatensor() for s in small]

    def m_labels(labels):
        return metatensor.Labels(labels.names, labels.array)

    m_first_half = m_labels(first_half)
    m_selections = [m_labels(s) for s in selections]

    cases = [
        ("add", lambda: ops.add(tensor, twin), lambda: mts.add(m_tensor, m_twin)),
        ("multiply", lambda: ops.multiply(tensor, twin), lambda: mts.multiply(m_tensor, m_twin)),
        ("dot", lambda: ops.dot(tensor, weights), lambda: mts.dot(m_tensor, m_weights)),
        ("sum_over_samples", lambda: ops.sum_over_samples(tensor, "atom"),
         lambda: mts.sum_over_samples(m_tensor, "atom")),
        ("join (2 inputs)", lambda: ops.join(halves, "samples"), lambda: mts.join(m_halves, "samples")),
        (f"join ({n_small} inputs)", lambda: ops.join(small, "samples"), lambda: mts.join(m_small, "samples")),
        ("slice", lambda: ops.slice(tensor, "samples", first_half),
         lambda: mts.slice(m_tensor, "samples", m_first_half)),
        ("split (10 selections)", lambda: ops.split(tensor, "samples", selections),
         lambda: mts.split(m_tensor, "samples", m_selections)),
        ("keys_to_properties", lambda: tensor.keys_to_properties("center_type"),
         lambda: m_tensor.keys_to_properties("center_type")),
        ("equal_metadata", lambda: ops.equal_metadata(tensor, twin), lambda: mts.equal_metadata(m_tensor, m_twin)),
    ]
    print(f"{'operation':<24} {'mtdsl (ms)':>11} {'metatensor (ms)':>16} {'ratio':>7}")
    for name, ours, theirs in cases:
        t_ours, t_theirs = best_pair(ours, theirs, args.repeats)
        print(f"{name:<24} {1e3 * t_ours:>11.2f} {1e3 * t_theirs:>16.2f} {t_ours / t_theirs:>6.2f}x")

    tenth = small[: n_small // 10]
    t_tenth, t_all = best_pair(lambda: ops.join(tenth, "samples"), lambda: ops.join(small, "samples"), args.repeats)
    print(f"\njoin scaling: {n_small} inputs take {t_all / t_tenth:.1f}x the time of {n_small // 10} (linear: 10x)")


if __name__ == "__main__":
    main()
