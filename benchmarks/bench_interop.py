"""Cost of the bridges, measured side by side in one run.

    .venv/bin/python benchmarks/bench_interop.py [--repeats 7] [--structures 16] [--atoms 64]

1. PyTorch Geometric: `model(batch)` with a `torch_geometric` `Batch` of `--structures` graphs
   against `model(frames)` with the same `ase.Atoms` (the SOAP energy model, cpp backend,
   cutoff 5, 6 radial, max_angular 4, one thread). The ratio is batch / frames; the overhead is the
   difference over the frames' call (target: under 10 %). The input stage alone
   (`model.bind`: systems and neighbour lists, from the batch or from the frames) is shown too.
2. JAX: `jax.jit(jax.grad(f))` of the energy (f = `model.to_jax("energy")`) on one periodic
   cell of `--atoms` atoms, against `model([atoms], gradients=["positions"])` (its reverse
   gradient blocks). The ratio is JAX / model (target: under 1.5).

Every timing is the minimum over `--repeats` runs of the process's CPU time (all threads;
steadier than wall time on a loaded machine), alternating the two sides.
"""

from __future__ import annotations

import argparse
import time

import ase.build
import jax
import jax.numpy as jnp
import numpy as np
from torch_geometric.data import Batch

import mtdsl
import mtdsl.pyg

PROGRAM = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "soap_energy.mt"


def frames(count: int, atoms: int, seed: int = 0) -> list:
    """Rattled silicon / carbon diamond cells of `atoms` atoms (a multiple of 8)."""
    rng = np.random.default_rng(seed)
    repeat = round((atoms / 8) ** (1 / 3))
    result = []
    for index in range(count):
        cell = ase.build.bulk("Si", "diamond", a=5.43, cubic=True).repeat((repeat, repeat, max(atoms // (8 * repeat * repeat), 1)))
        cell.numbers[rng.choice(len(cell), size=len(cell) // 4, replace=False)] = 6
        cell.rattle(0.05, seed=int(rng.integers(1 << 30)))
        result.append(cell)
    return result


def best(functions: dict, repeats: int) -> dict:
    """The minimum over `repeats` runs of each function's CPU time (all the process's threads:
    steadier than wall time on a shared machine), the functions alternating."""
    times = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.process_time()
            function()
            times[name] = min(times[name], time.process_time() - start)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--structures", type=int, default=16)
    parser.add_argument("--atoms", type=int, default=64)
    args = parser.parse_args(argv)
    model = mtdsl.compile(PROGRAM, backend="cpp", cutoff=5.0, n_radial=6, max_angular=4, species=[6, 14])
    model.threads = 1  # one thread: the CPU time is the work (OpenMP's idle threads spin)
    rng = np.random.default_rng(1)
    for name, value in model.parameters.items():
        model.parameters[name] = rng.normal(size=np.shape(value)) * 1e-2

    # 1. PyG batch against ase frames
    data = frames(args.structures, args.atoms)
    batch = Batch.from_data_list([mtdsl.pyg.to_data(atoms) for atoms in data])
    model(data), model(batch)  # warm up (native library loaded)
    times = best({"frames": lambda: model(data), "batch": lambda: model(batch),
                  "bind frames": lambda: model.bind(data, {}), "bind batch": lambda: model.bind(batch, {})},
                 args.repeats)
    n_atoms = sum(len(a) for a in data)
    print(f"model(batch) vs model(frames): {args.structures} structures, {n_atoms} atoms")
    print(f"  model(frames)        {times['frames'] * 1e3:9.2f} ms")
    print(f"  model(batch)         {times['batch'] * 1e3:9.2f} ms   ratio {times['batch'] / times['frames']:.3f}  "
          f"overhead {100 * (times['batch'] - times['frames']) / times['frames']:+.1f} %")
    print(f"  bind(frames)         {times['bind frames'] * 1e3:9.2f} ms")
    print(f"  bind(batch)          {times['bind batch'] * 1e3:9.2f} ms   (difference "
          f"{100 * (times['bind batch'] - times['bind frames']) / times['frames']:+.1f} % of the model call)")

    # 2. JAX grad against the model's gradient blocks
    atoms = frames(1, args.atoms, seed=5)[0]
    f = model.to_jax("energy")
    with jax.enable_x64(True):
        positions = jnp.asarray(atoms.positions)
        kwargs = dict(types=atoms.numbers, cell=jnp.asarray(atoms.cell.array), pbc=atoms.pbc)
        grad = jax.jit(jax.grad(lambda r: f(r, **kwargs).sum()))
        value_and_grad = jax.jit(jax.value_and_grad(lambda r: f(r, **kwargs).sum()))
        found = np.asarray(grad(positions))  # traces and compiles once
        value_and_grad(positions)
        expected = model([atoms], gradients=["positions"])["energy"].block().gradient("positions")
        reference = np.zeros_like(found)
        reference[expected.samples.array[:, 2]] = expected.values[:, :, 0]
        assert np.abs(found - reference).max() <= 1e-9 * np.abs(reference).max()
        # new positions at every call: the JAX function reuses its last run only for the same inputs
        moved = iter(positions + 1e-4 * k for k in range(1, 3 * args.repeats + 1))
        times = best({"model": lambda: model([atoms], gradients=["positions"]),
                      "grad": lambda: grad(next(moved)).block_until_ready(),
                      "value_and_grad": lambda: value_and_grad(next(moved))[1].block_until_ready()}, args.repeats)
    print(f"jax.grad vs model(..., gradients=['positions']): one cell of {len(atoms)} atoms "
          f"(the model's path: {model.last_gradient_path.get('energy', '?')})")
    print(f"  model(gradients)     {times['model'] * 1e3:9.2f} ms")
    print(f"  jit(grad(f))         {times['grad'] * 1e3:9.2f} ms   ratio {times['grad'] / times['model']:.3f}")
    print(f"  jit(value_and_grad)  {times['value_and_grad'] * 1e3:9.2f} ms   "
          f"ratio {times['value_and_grad'] / times['model']:.3f}")


if __name__ == "__main__":
    main()
